using System.Text.Json;
using OrleansDif.Protection;

namespace OrleansDif.Cli.Tests;

public sealed class ScrubCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("orleansdif-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string MakeImage(int size, PiType type, int sectors, bool sidecar = true)
    {
        string path = Path.Combine(_dir, $"d{size}-{(int)type}.img");
        var scheme = new ProtectionScheme(new SectorFormat(size), type) { AppTag = 0x00AB };
        byte[] data = new byte[size * sectors];
        new Random(size).NextBytes(data);
        byte[] pi = new byte[8 * sectors];
        scheme.Generate(data, pi, 0);
        using (DiskImage img = DiskImage.Create(path, new SectorFormat(size), type, sectors))
        {
            img.Write(0, data, pi);
        }
        if (!sidecar)
        {
            File.Delete(DiskImageInfo.SidecarPath(path));
        }
        return path;
    }

    private static void Poke(string path, long offset, byte xor)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        f.Position = offset;
        int b = f.ReadByte();
        f.Position = offset;
        f.WriteByte((byte)(b ^ xor));
    }

    [Fact]
    public async Task CleanImageExitsZeroWithJson()
    {
        string path = MakeImage(512, PiType.Type1, 64);
        var (exit, stdout, _) = await CliRunner.RunAsync("scrub", path, "--json");
        Assert.Equal(0, exit);
        using JsonDocument doc = JsonDocument.Parse(stdout);
        Assert.Equal(path, doc.RootElement.GetProperty("image").GetString());
        Assert.Equal(64, doc.RootElement.GetProperty("sectors").GetInt64());
        Assert.True(doc.RootElement.GetProperty("clean").GetBoolean());
        Assert.Equal(0, doc.RootElement.GetProperty("errors").GetArrayLength());
    }

    [Fact]
    public async Task PlantedFaultsAreListedInLbaOrder()
    {
        string path = MakeImage(4096, PiType.Type1, 16);
        Poke(path, 3 * 4104 + 4096 + 7, 0x01);   // LBA 3: reference tag
        Poke(path, 9 * 4104 + 17, 0x80);         // LBA 9: data -> guard
        var (exit, stdout, _) = await CliRunner.RunAsync("scrub", path, "--json");
        Assert.Equal(1, exit);
        using JsonDocument doc = JsonDocument.Parse(stdout);
        var errors = doc.RootElement.GetProperty("errors").EnumerateArray().ToList();
        Assert.False(doc.RootElement.GetProperty("clean").GetBoolean());
        Assert.Equal(2, errors.Count);
        Assert.Equal(3, errors[0].GetProperty("lba").GetInt64());
        Assert.Equal("ref", errors[0].GetProperty("check").GetString());
        Assert.Equal(3, errors[0].GetProperty("expected").GetInt64());
        Assert.Equal(2, errors[0].GetProperty("actual").GetInt64());
        Assert.Equal(9, errors[1].GetProperty("lba").GetInt64());
        Assert.Equal("guard", errors[1].GetProperty("check").GetString());
    }

    [Fact]
    public async Task AppTagCheckedOnlyWhenGivenAndMasked()
    {
        string path = MakeImage(512, PiType.Type2, 4);
        Assert.Equal(0, (await CliRunner.RunAsync("scrub", path)).Exit);
        Assert.Equal(0, (await CliRunner.RunAsync("scrub", path, "--app-tag", "0xAB")).Exit);
        var (exit, stdout, _) = await CliRunner.RunAsync("scrub", path, "--app-tag", "0x12AB", "--json");
        Assert.Equal(1, exit);
        using JsonDocument doc = JsonDocument.Parse(stdout);
        Assert.All(doc.RootElement.GetProperty("errors").EnumerateArray(), e => Assert.Equal("app", e.GetProperty("check").GetString()));
        Assert.Equal(0, (await CliRunner.RunAsync("scrub", path, "--app-tag", "0x12AB", "--app-mask", "0x00FF")).Exit);
    }

    [Fact]
    public async Task WithoutSidecarTheOptionsGiveTheGeometry()
    {
        string path = MakeImage(4096, PiType.Type3, 4, sidecar: false);
        Assert.Equal(0, (await CliRunner.RunAsync("scrub", path, "--sector-size", "4096", "--pi-type", "3")).Exit);
        // Read as 512-byte sectors, the image is not a whole number of 520-byte blocks.
        var (exit, _, stderr) = await CliRunner.RunAsync("scrub", path);
        Assert.Equal(2, exit);
        Assert.Contains("not a whole number", stderr);
    }

    [Fact]
    public async Task HumanOutputNamesTheFailures()
    {
        string path = MakeImage(512, PiType.Type1, 8);
        Poke(path, 5 * 520 + 1, 0x04);
        var (exit, stdout, _) = await CliRunner.RunAsync("scrub", path);
        Assert.Equal(1, exit);
        Assert.Contains("LBA 5: guard check failed", stdout);
        Assert.Contains("ASCQ 0x01", stdout);
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("missing")]
    [InlineData("badsize")]
    [InlineData("badtype")]
    [InlineData("badtag")]
    public async Task BadUsageAndUnreadableImagesExitTwo(string kind)
    {
        string path = MakeImage(512, PiType.Type1, 8);
        string[] args = kind switch
        {
            "missing" => ["scrub", Path.Combine(_dir, "nope.img")],
            "badsize" => ["scrub", path, "--sector-size", "520"],
            "badtype" => ["scrub", path, "--pi-type", "4"],
            "badtag" => ["scrub", path, "--app-tag", "0x10000"],
            _ => ["scrub", path],
        };
        if (kind == "truncated")
        {
            using var f = new FileStream(path, FileMode.Open);
            f.SetLength(f.Length - 3);
        }
        var (exit, stdout, stderr) = await CliRunner.RunAsync(args);
        Assert.Equal(2, exit);
        Assert.NotEmpty(stderr);
        Assert.Empty(stdout);
    }

    [Fact]
    public async Task ACrc64ImageScrubsWithTheSameJson()
    {
        string path = Path.Combine(_dir, "nvme.img");
        const int size = 512, sectors = 16, block = size + Pi64Tuple.Size;
        byte[] image = new byte[sectors * block];
        new Random(7).NextBytes(image);
        for (int lba = 0; lba < sectors; lba++)
        {
            Span<byte> b = image.AsSpan(lba * block, block);
            new Pi64Tuple(Crc64Nvme.Compute(b[..size]), 0x00AB, (ulong)lba).Write(b[size..]);
        }
        image[6 * block + 100] ^= 0x10; // sector 6's data
        File.WriteAllBytes(path, image);
        var (exit, stdout, _) = await CliRunner.RunAsync("scrub", path, "--guard", "crc64", "--json");
        Assert.Equal(1, exit);
        using JsonDocument doc = JsonDocument.Parse(stdout);
        Assert.Equal(sectors, doc.RootElement.GetProperty("sectors").GetInt64());
        JsonElement error = Assert.Single(doc.RootElement.GetProperty("errors").EnumerateArray());
        Assert.Equal(6, error.GetProperty("lba").GetInt64());
        Assert.Equal("guard", error.GetProperty("check").GetString());
        Assert.Equal(Pi64Tuple.Read(image.AsSpan(6 * block + size)).Guard, error.GetProperty("actual").GetUInt64());
        (exit, _, _) = await CliRunner.RunAsync("scrub", path, "--guard", "crc32");
        Assert.Equal(2, exit);
        (exit, _, string stderr) = await CliRunner.RunAsync("scrub", path); // read as 8-byte tuples: not whole sectors
        Assert.Equal(2, exit);
        Assert.Contains("not a whole number", stderr);
    }
}
