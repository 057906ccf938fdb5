namespace OrleansDif.Protection.Tests;

public sealed class DiskImageTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("orleansdif-img-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string NewPath(string name = "disk0.img") => Path.Combine(_dir, name);

    [Theory]
    [InlineData(512, PiType.Type1)]
    [InlineData(4096, PiType.Type2)]
    [InlineData(512, PiType.Type3)]
    public void WriteReadRoundTripAndLayout(int size, PiType type)
    {
        string path = NewPath();
        var format = new SectorFormat(size);
        var scheme = new ProtectionScheme(format, type);
        byte[] data = new byte[size * 3];
        new Random(1).NextBytes(data);
        byte[] pi = new byte[24];
        scheme.Generate(data, pi, 5);
        using (DiskImage img = DiskImage.Create(path, format, type, 16))
        {
            img.Write(5, data, pi);
            img.Flush();
            byte[] d2 = new byte[data.Length];
            byte[] p2 = new byte[24];
            img.Read(5, d2, p2);
            Assert.Equal(data, d2);
            Assert.Equal(pi, p2);
        }
        // The layout of DESIGN.md: LBA n at n * (size + 8), data then tuple.
        byte[] raw = File.ReadAllBytes(path);
        Assert.Equal(16 * (size + 8), raw.Length);
        Assert.Equal(data.AsSpan(size, size).ToArray(), raw.AsSpan(6 * (size + 8), size).ToArray());
        Assert.Equal(pi.AsSpan(8, 8).ToArray(), raw.AsSpan(6 * (size + 8) + size, 8).ToArray());
        DiskImageInfo info = DiskImageInfo.TryLoad(path)!;
        Assert.Equal(size, info.SectorSize);
        Assert.Equal((int)type, info.PiType);
        Assert.Equal(16, info.Sectors);
        using DiskImage reopened = DiskImage.Open(path, writable: false);
        Assert.Equal(format, reopened.Format);
        Assert.Equal(type, reopened.PiType);
    }

    [Fact]
    public void NewImageIsFormattedUnwrittenAndScrubsClean()
    {
        string path = NewPath();
        using (DiskImage.Create(path, SectorFormat.Sector512, PiType.Type1, 100)) { }
        ScrubReport r = Scrubber.Scrub(path);
        Assert.True(r.Clean);
        Assert.Equal(100, r.Sectors);
    }

    [Fact]
    public void BadCommandsAreTypedErrorsAndWriteNothing()
    {
        string path = NewPath();
        using DiskImage img = DiskImage.Create(path, SectorFormat.Sector512, PiType.Type1, 8);
        byte[] before = File.ReadAllBytes(path);
        Assert.Equal(DifError.OutOfRange, Assert.Throws<DifArgumentException>(() => img.Write(8, new byte[512], new byte[8])).Error);
        Assert.Equal(DifError.OutOfRange, Assert.Throws<DifArgumentException>(() => img.Write(7, new byte[1024], new byte[16])).Error);
        Assert.Equal(DifError.OutOfRange, Assert.Throws<DifArgumentException>(() => img.Write(-1, new byte[512], new byte[8])).Error);
        Assert.Equal(DifError.NotWholeSectors, Assert.Throws<DifArgumentException>(() => img.Write(0, new byte[513], new byte[8])).Error);
        Assert.Equal(DifError.EmptyBuffer, Assert.Throws<DifArgumentException>(() => img.Write(0, [], [])).Error);
        Assert.Equal(DifError.PiCountMismatch, Assert.Throws<DifArgumentException>(() => img.Write(0, new byte[1024], new byte[8])).Error);
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(DifError.BadGeometry, Assert.Throws<DifArgumentException>(() =>
            DiskImage.Create(NewPath("x.img"), SectorFormat.Sector512, PiType.Type1, 0)).Error);
        Assert.False(File.Exists(NewPath("x.img")));
    }

    [Fact]
    public void SecondWriterIsLockedOut()
    {
        string path = NewPath();
        using DiskImage img = DiskImage.Create(path, SectorFormat.Sector512, PiType.Type1, 8);
        Assert.ThrowsAny<IOException>(() => DiskImage.Open(path, writable: true));
        using DiskImage reader = DiskImage.Open(path, writable: false);
        Assert.Equal(8, reader.SectorCount);
    }

    [Fact]
    public void ScrubFindsPlantedFaultsExactly()
    {
        string path = NewPath();
        var scheme = new ProtectionScheme(SectorFormat.Sector512, PiType.Type1);
        byte[] data = new byte[512 * 10];
        new Random(3).NextBytes(data);
        byte[] pi = new byte[80];
        scheme.Generate(data, pi, 0);
        using (DiskImage img = DiskImage.Create(path, SectorFormat.Sector512, PiType.Type1, 10))
        {
            img.Write(0, data, pi);
        }
        using (var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            // LBA 2: a bit of data flipped -> guard
            f.Position = 2 * 520 + 100; int b = f.ReadByte(); f.Position--; f.WriteByte((byte)(b ^ 0x10));
            // LBA 7: reference tag says 8 -> ref
            f.Position = 7 * 520 + 512 + 4; f.Write([0, 0, 0, 8]);
        }
        ScrubReport r = Scrubber.Scrub(path);
        Assert.False(r.Clean);
        Assert.Equal(2, r.Errors.Count);
        Assert.Equal(2, r.Errors[0].Lba);
        Assert.Equal(PiCheck.Guard, r.Errors[0].Check);
        Assert.Equal(Crc16Reference.Compute(File.ReadAllBytes(path).AsSpan(2 * 520, 512)), (ushort)r.Errors[0].Expected);
        Assert.Equal(PiTuple.Read(pi.AsSpan(16)).Guard, (ushort)r.Errors[0].Actual);
        Assert.Equal(new PiError(7, PiCheck.RefTag, 7, 8), r.Errors[1]);
        // The application tag is checked only when asked for.
        ScrubReport withApp = Scrubber.Scrub(path, appTag: 0x0001);
        Assert.Equal(10, withApp.Errors.Count);
    }

    [Fact]
    public void TruncatedAndMissingImagesAreTypedErrors()
    {
        string path = NewPath();
        using (DiskImage.Create(path, SectorFormat.Sector512, PiType.Type1, 4)) { }
        using (var f = new FileStream(path, FileMode.Open)) { f.SetLength(3 * 520 + 100); }
        Assert.Equal(DifError.TruncatedImage, Assert.Throws<DifArgumentException>(() => Scrubber.Scrub(path)).Error);
        using (var f = new FileStream(path, FileMode.Open)) { f.SetLength(3 * 520); }
        Assert.Equal(DifError.TruncatedImage, Assert.Throws<DifArgumentException>(() => Scrubber.Scrub(path)).Error);
        Assert.Equal(DifError.BadImage, Assert.Throws<DifArgumentException>(() => Scrubber.Scrub(NewPath("none.img"))).Error);
    }
}
