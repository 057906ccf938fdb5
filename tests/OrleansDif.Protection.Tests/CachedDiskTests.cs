namespace OrleansDif.Protection.Tests;

/// <summary>The volatile write cache, its group-committed flush and the fence, transition by transition.</summary>
public sealed class CachedDiskTests : IDisposable
{
    private const int Spp = 8; // 512-byte sectors, 4 KiB pages
    private readonly string _dir = Directory.CreateTempSubdirectory("orleansdif-cache-").FullName;
    private readonly SectorFormat _format = new(512);
    private readonly ProtectionScheme _scheme;

    public CachedDiskTests() => _scheme = new ProtectionScheme(_format, PiType.Type1);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string ImagePath => Path.Combine(_dir, "disk0.img");

    private (DiskImage Image, CachedDisk Disk) Open()
    {
        DiskImage image = File.Exists(ImagePath)
            ? DiskImage.Open(ImagePath, writable: true)
            : DiskImage.Create(ImagePath, _format, PiType.Type1, 8 * Spp);
        return (image, new CachedDisk(image, Spp));
    }

    private (byte[] Data, byte[] Pi) Page(int seed, long lba, int pages = 1)
    {
        byte[] data = new byte[pages * 4096];
        new Random(seed).NextBytes(data);
        byte[] pi = new byte[pages * Spp * PiTuple.Size];
        _scheme.Generate(data, pi, lba);
        return (data, pi);
    }

    private static byte[] ReadData(CachedDisk disk, long lba, int sectors = Spp)
    {
        byte[] data = new byte[sectors * 512];
        disk.Read(lba, data, new byte[sectors * PiTuple.Size]);
        return data;
    }

    [Fact]
    public async Task WritesLandInTheCacheAndOnlyAFlushPutsThemOnTheMedium()
    {
        var (image, disk) = Open();
        var (data, pi) = Page(1, 8);
        Assert.Equal(FencedWrite.Accepted, disk.WritePages(8, data, pi, [5]));
        Assert.Equal(data, ReadData(disk, 8));                 // reads see the cache
        byte[] medium = new byte[4096];
        image.Read(8, medium, new byte[Spp * PiTuple.Size]);
        Assert.NotEqual(data, medium);                          // the medium does not have it yet
        Assert.Equal(1, disk.CachedSlots);

        await disk.FlushAsync();
        image.Read(8, medium, new byte[Spp * PiTuple.Size]);
        Assert.Equal(data, medium);
        Assert.Equal(0, disk.CachedSlots);
        Assert.Equal(1, disk.Flushes);
        disk.Dispose();
        image.Dispose();
    }

    [Fact]
    public async Task ADiskThatDiesLosesExactlyItsUnflushedWrites()
    {
        var (image, disk) = Open();
        var (a, piA) = Page(1, 0);
        var (b, piB) = Page(2, 8);
        disk.WritePages(0, a, piA, [3]);
        await disk.FlushAsync();
        disk.WritePages(8, b, piB, [4]);          // never flushed
        disk.Dispose();                           // the process dies: the cache goes with it
        image.Dispose();

        (image, disk) = Open();
        Assert.Equal(a, ReadData(disk, 0));
        Assert.NotEqual(b, ReadData(disk, 8));
        Assert.Equal(3, disk.HeldVersion(0));     // the fence of the flushed write survived
        Assert.Equal(0, disk.HeldVersion(8));     // the unflushed one's did not
        Assert.True(_scheme.Verify(ReadData(disk, 0, 16), ReadPi(disk, 0, 16), 0) is null);
        disk.Dispose();
        image.Dispose();
    }

    private static byte[] ReadPi(CachedDisk disk, long lba, int sectors)
    {
        byte[] pi = new byte[sectors * PiTuple.Size];
        disk.Read(lba, new byte[sectors * 512], pi);
        return pi;
    }

    [Fact]
    public async Task ConcurrentFlushesCoalesceIntoOne()
    {
        var (image, disk) = Open();
        var (data, pi) = Page(1, 0);
        disk.WritePages(0, data, pi, [1]);
        // Three callers in one turn share one flush: the flush takes its snapshot after they all joined.
        await Task.WhenAll(disk.FlushAsync(), disk.FlushAsync(), disk.FlushAsync());
        Assert.Equal(1, disk.Flushes);
        await disk.FlushAsync();                  // nothing new: no I/O
        Assert.Equal(1, disk.Flushes);
        disk.Dispose();
        image.Dispose();
    }

    [Fact]
    public void AnOlderVersionIsRefusedAsStaleAndChangesNothing()
    {
        var (image, disk) = Open();
        var (newer, piN) = Page(1, 0);
        var (older, piO) = Page(2, 0);
        Assert.Equal(FencedWrite.Accepted, disk.WritePages(0, newer, piN, [10]));
        Assert.Equal(FencedWrite.Stale, disk.WritePages(0, older, piO, [9]));
        Assert.Equal(newer, ReadData(disk, 0));
        Assert.Equal(10, disk.HeldVersion(0));
        Assert.Equal(FencedWrite.Accepted, disk.WritePages(0, newer, piN, [10])); // the same version again: idempotent

        // A command of two pages is refused whole when one of them is stale.
        var (two, piTwo) = Page(3, 0, pages: 2);
        Assert.Equal(FencedWrite.Stale, disk.WritePages(0, two, piTwo, [9, 100]));
        Assert.Equal(0, disk.HeldVersion(8));
        disk.Dispose();
        image.Dispose();
    }

    [Fact]
    public async Task AClaimRaisesTheFloorDurablyAndEpochsNeverRepeat()
    {
        var (image, disk) = Open();
        long e1 = disk.NewEpoch();
        long e2 = disk.NewEpoch();
        Assert.True(e2 > e1);
        disk.Claim(0, e2 << 24);
        var (data, pi) = Page(1, 0);
        Assert.Equal(FencedWrite.Stale, disk.WritePages(0, data, pi, [(e1 << 24) + 7])); // an older activation's command
        Assert.Equal(FencedWrite.Accepted, disk.WritePages(0, data, pi, [(e2 << 24) + 1]));
        await disk.FlushAsync();
        disk.Dispose();
        image.Dispose();

        (image, disk) = Open();
        Assert.True(disk.NewEpoch() > e2);        // reserved durably: a new activation never hands e2 out again
        var (old, piOld) = Page(2, 0);
        Assert.Equal(FencedWrite.Stale, disk.WritePages(0, old, piOld, [(e2 << 24)]));
        disk.Dispose();
        image.Dispose();
    }

    /// <summary>
    /// Slot 0 flushed at version 3, then at 4; then the medium holds version 3's data again, and, when
    /// <paramref name="beforeTheMark"/>, the fence's completion mark is the one before the second flush too.
    /// </summary>
    private async Task SecondFlushReachesOnlyTheFence(bool beforeTheMark)
    {
        var (image, disk) = Open();
        var (a, piA) = Page(1, 0);
        disk.WritePages(0, a, piA, [3]);
        await disk.FlushAsync();
        byte[] before = new byte[a.Length + piA.Length];
        image.ReadRaw(0, before);
        byte[] mark = ReadMark(image);
        var (b, piB) = Page(2, 0);
        disk.WritePages(0, b, piB, [4]);
        await disk.FlushAsync();
        disk.Dispose();
        image.WriteRaw(0, before);
        if (beforeTheMark)
        {
            WriteMark(image, mark);
        }
        image.Dispose();
    }

    [Fact]
    public async Task AFlushCutShortBetweenFenceAndDataIsSetBackAtOpen()
    {
        // The process died after the fence reached the medium and before the data did (so before the flush marked
        // itself complete): the medium has version 3's data.
        await SecondFlushReachesOnlyTheFence(beforeTheMark: true);
        var (image, disk) = Open();
        Assert.Equal(1, disk.Reverted);
        Assert.Equal(3, disk.HeldVersion(0));
        Assert.Equal(3, disk.FlushedVersion(0));
        disk.Dispose();
        image.Dispose();
    }

    [Fact]
    public async Task AWriteTheMediumLostInAFlushThatCompletedIsNotSetBackButLeftForTheVersionTags()
    {
        // The flush answered and marked itself complete, yet the medium kept version 3 (a lost write): setting the
        // slot back would lose an fsynced version silently; the fence keeps 4, and the version tags report the loss.
        await SecondFlushReachesOnlyTheFence(beforeTheMark: false);
        var (image, disk) = Open();
        Assert.Equal(0, disk.Reverted);
        Assert.Equal(4, disk.HeldVersion(0));
        disk.Dispose();
        image.Dispose();
    }

    private static byte[] ReadMark(DiskImage image)
    {
        byte[] mark = new byte[8];
        using var fence = File.OpenHandle(CachedDisk.FencePath(image.Path), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        RandomAccess.Read(fence, mark, CachedDisk.CompletedSequenceOffset);
        return mark;
    }

    private static void WriteMark(DiskImage image, byte[] mark)
    {
        using var fence = File.OpenHandle(CachedDisk.FencePath(image.Path), FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
        RandomAccess.Write(fence, mark, CachedDisk.CompletedSequenceOffset);
    }

    [Fact]
    public async Task AFlushThatFinishedStaysEvenWhenTheVersionTagsOfBothVersionsAreEqual()
    {
        // Versions 65535 epochs apart carry the same 16-bit version tag: only the data itself tells them apart.
        long older = 5L << 24, newer = (5L + 0xFFFF) << 24;
        var (image, disk) = Open();
        var (a, piA) = Page(1, 0);
        disk.WritePages(0, a, piA, [older]);
        await disk.FlushAsync();
        var (b, piB) = Page(2, 0);
        disk.WritePages(0, b, piB, [newer]);
        await disk.FlushAsync();
        disk.Dispose();
        image.Dispose();

        (image, disk) = Open();
        Assert.Equal(0, disk.Reverted);
        Assert.Equal(newer, disk.HeldVersion(0));
        disk.Dispose();
        image.Dispose();
    }

    [Fact]
    public async Task BitRotInTheDataAfterAFlushIsNotTakenForAFlushCutShort()
    {
        var (image, disk) = Open();
        var (a, piA) = Page(1, 0);
        disk.WritePages(0, a, piA, [3]);
        await disk.FlushAsync();
        var (b, piB) = Page(2, 0);
        disk.WritePages(0, b, piB, [4]);
        await disk.FlushAsync();
        disk.Dispose();
        byte[] sector = new byte[image.Format.BlockSize];
        image.ReadRaw(1, sector);
        sector[17] ^= 0x20; // one data bit of sector 1 rots at rest: its guard will catch it at read
        image.WriteRaw(1, sector);
        image.Dispose();

        (image, disk) = Open();
        Assert.Equal(0, disk.Reverted);
        Assert.Equal(4, disk.HeldVersion(0));
        disk.Dispose();
        image.Dispose();
    }

    [Fact]
    public void BadCommandsAreTypedErrors()
    {
        var (image, disk) = Open();
        var (data, pi) = Page(1, 0);
        Assert.Equal(DifError.NotWholeSectors, Assert.Throws<DifArgumentException>(() => disk.WritePages(4, data, pi, [1])).Error); // not a page start
        Assert.Equal(DifError.NotWholeSectors, Assert.Throws<DifArgumentException>(() => disk.WritePages(0, data, pi, [1, 2])).Error); // versions != pages
        Assert.Equal(DifError.OutOfRange, Assert.Throws<DifArgumentException>(() => disk.WritePages(8 * Spp, data, pi, [1])).Error);
        Assert.Equal(0, disk.CachedSlots);
        disk.Dispose();
        image.Dispose();
    }
}
