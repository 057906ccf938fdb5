using System.Text.Json.Nodes;
using OrleansDif.Protection;

namespace OrleansDif.Nbd.Tests.Tools;

/// <summary>
/// Real block-storage clients (nbdinfo, qemu-io, qemu-img, nbdcopy, fio) against volumes served over NBD by a
/// three-silo cluster: stable pages, DIF checked at the disks.
/// </summary>
[Collection(NbdClusterCollection.Name)]
public sealed class NbdToolTests(NbdClusterFixture fixture)
{
    private const int Size = NbdClusterFixture.Pages * VolumeConfig.PageSize;

    [Fact]
    public async Task NbdinfoReportsTheSizeAndListsTheExports()
    {
        var (code, output) = await NbdClusterFixture.RunAsync("nbdinfo", "--size", fixture.Uri("info"));
        Assert.True(code == 0, output);
        Assert.Equal(Size.ToString(), output.Trim());
        (code, output) = await NbdClusterFixture.RunAsync("nbdinfo", "--list", fixture.Uri(""));
        Assert.True(code == 0, output);
        Assert.Contains("export=\"info-bounce\"", output);
        Assert.Contains("can_multi_conn: true", output);
    }

    [Fact]
    public async Task QemuIoWritesPatternsAndReadsThemBackAndUnwrittenSectorsReadAsZeros()
    {
        var (code, output) = await NbdClusterFixture.RunAsync("qemu-io", "-f", "raw",
            "-c", "write -P 0xab 0 64k",
            "-c", "write -P 0x5c 70144 1536",          // partial pages, sector-aligned
            "-c", "write -z 8192 4096",                // WRITE_ZEROES inside the first pattern
            "-c", "read -P 0xab 0 8k",
            "-c", "read -P 0 8192 4096",
            "-c", "read -P 0xab 12288 52k",
            "-c", "read -P 0x5c 70144 1536",
            "-c", "read -P 0 512k 64k",                // never written
            "-c", "flush",
            fixture.Uri("qemu"));
        Assert.True(code == 0, output);
        Assert.DoesNotContain("fail", output, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(8, output.Split('\n').Count(l => l.StartsWith("read ", StringComparison.Ordinal) || l.StartsWith("wrote ", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task QemuImgConvertCopiesARandomImageInAndCompareAndNbdcopyFindItIdentical()
    {
        string dir = Directory.CreateTempSubdirectory("orleansdif-convert-").FullName;
        try
        {
            byte[] image = new byte[Size];
            new Random(42).NextBytes(image);
            image.AsSpan(256 * 1024, 128 * 1024).Clear(); // a hole: qemu-img may send it as WRITE_ZEROES
            string source = Path.Combine(dir, "source.raw");
            await File.WriteAllBytesAsync(source, image);
            var (code, output) = await NbdClusterFixture.RunAsync("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source, fixture.Uri("convert"));
            Assert.True(code == 0, output);
            (code, output) = await NbdClusterFixture.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", source, fixture.Uri("convert"));
            Assert.True(code == 0, output);
            Assert.Contains("Images are identical", output);
            string back = Path.Combine(dir, "back.raw");
            (code, output) = await NbdClusterFixture.RunAsync("nbdcopy", fixture.Uri("convert"), back);
            Assert.True(code == 0, output);
            Assert.Equal(image, await File.ReadAllBytesAsync(back));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task AFioJobWithCrc32cVerifyPassesAndTheDisksScrubCleanAfterItsFsync()
    {
        var (code, output) = await NbdClusterFixture.RunAsync("fio", "--name=verify", "--ioengine=nbd", $"--uri={fixture.Uri("fio")}",
            "--rw=randwrite", "--bs=4k", "--iodepth=16", $"--size={Size}", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
            "--end_fsync=1", "--output-format=json");
        Assert.True(code == 0, output);
        JsonNode job = JsonNode.Parse(output[output.IndexOf('{')..])!["jobs"]![0]!;
        Assert.Equal(0, job["error"]!.GetValue<int>());
        Assert.Equal(Size / 4096, job["write"]!["total_ios"]!.GetValue<long>());
        Assert.True(job["read"]!["total_ios"]!.GetValue<long>() >= Size / 4096); // every block read back and verified
        VolumeConfig volume = fixture.Volume("fio");
        for (int disk = 0; disk < volume.Disks; disk++)
        {
            ScrubReport report = Scrubber.Scrub(Path.Combine(fixture.DataDirectory, $"fio.disk{disk}.img"));
            Assert.True(report.Clean, string.Join("; ", report.Errors.Take(5)));
        }
    }

    [Fact]
    public async Task AReadOfPageMemoryThatNoLongerMatchesItsTagsIsEioNeverData()
    {
        await using TestNbdClient c = await TestNbdClient.OpenAsync(fixture.Server.Endpoint, "eio");
        byte[] data = new byte[8192];
        new Random(7).NextBytes(data);
        Assert.Equal(NbdError.None, (await c.CallAsync(NbdCommand.Write, 3 * 4096, 8192, data)).Error);
        long errors = fixture.Server.Stats.IoErrors;
        await fixture.Grains.Page("eio", 3).InjectBitflip(8 * 700); // sector 1 of page 3
        Assert.Equal(NbdError.Io, (await c.CallAsync(NbdCommand.Read, 3 * 4096, 8192)).Error);
        Assert.Equal(NbdError.Io, (await c.CallAsync(NbdCommand.Read, 3 * 4096 + 512, 512)).Error);
        Assert.Equal(errors + 2, fixture.Server.Stats.IoErrors);
        Assert.Equal(data[4096..], (await c.CallAsync(NbdCommand.Read, 4 * 4096, 4096)).Data); // the next page is fine
        Assert.Equal(NbdError.Io, (await c.CallAsync(NbdCommand.Flush, 0, 0)).Error);          // fsync reports the poisoned page
        // A whole-page write replaces the corrupt page: reads and flushes succeed again.
        Assert.Equal(NbdError.None, (await c.CallAsync(NbdCommand.Write, 3 * 4096, 4096, data[..4096])).Error);
        Assert.Equal(data[..4096], (await c.CallAsync(NbdCommand.Read, 3 * 4096, 4096)).Data);
        Assert.Equal(NbdError.None, (await c.CallAsync(NbdCommand.Flush, 0, 0)).Error);
    }

    [Fact]
    public async Task AFlushOnOneConnectionMakesWritesCompletedOnAnotherDurable()
    {
        await using TestNbdClient writer = await TestNbdClient.OpenAsync(fixture.Server.Endpoint, "multi");
        await using TestNbdClient flusher = await TestNbdClient.OpenAsync(fixture.Server.Endpoint, "multi");
        Assert.True(writer.Flags.HasFlag(TransmissionFlags.CanMultiConn));
        byte[] data = new byte[4096];
        for (int page = 0; page < 40; page++)
        {
            new Random(page).NextBytes(data);
            Assert.Equal(NbdError.None, (await writer.CallAsync(NbdCommand.Write, page * 4096L, 4096, data)).Error);
        }
        Assert.Equal(NbdError.None, (await flusher.CallAsync(NbdCommand.Flush, 0, 0)).Error);
        VolumeConfig volume = fixture.Volume("multi");
        for (int page = 0; page < 40; page++)
        {
            PageInfo info = await fixture.Grains.Page("multi", page).GetInfo();
            var (disk, lba) = volume.Locate(page);
            Assert.True(await fixture.Grains.Disk("multi", disk).FlushedVersion(lba) >= info.Version, $"page {page} is not on the medium after the flush");
        }
    }

    [Fact]
    public async Task TrimAndWriteZeroesReadBackAsZerosAndFuaIsDurableOnReturn()
    {
        await using TestNbdClient c = await TestNbdClient.OpenAsync(fixture.Server.Endpoint, "zeros");
        byte[] data = new byte[16384];
        new Random(9).NextBytes(data);
        Assert.Equal(NbdError.None, (await c.CallAsync(NbdCommand.Write, 0, 16384, data, CommandFlags.Fua)).Error);
        VolumeConfig volume = fixture.Volume("zeros");
        for (int page = 0; page < 4; page++)
        {
            PageInfo info = await fixture.Grains.Page("zeros", page).GetInfo();
            var (disk, lba) = volume.Locate(page);
            Assert.True(await fixture.Grains.Disk("zeros", disk).FlushedVersion(lba) >= info.Version, $"FUA write of page {page} is not on the medium");
        }
        Assert.Equal(NbdError.None, (await c.CallAsync(NbdCommand.Trim, 1024, 2048)).Error);
        Assert.Equal(NbdError.None, (await c.CallAsync(NbdCommand.WriteZeroes, 8192, 8192)).Error);
        byte[] expected = (byte[])data.Clone();
        expected.AsSpan(1024, 2048).Clear();
        expected.AsSpan(8192, 8192).Clear();
        Assert.Equal(expected, (await c.CallAsync(NbdCommand.Read, 0, 16384)).Data);
        Assert.Equal(NbdError.Invalid, (await c.CallAsync(NbdCommand.WriteZeroes, Size - 4096, 8192)).Error);
    }
}
