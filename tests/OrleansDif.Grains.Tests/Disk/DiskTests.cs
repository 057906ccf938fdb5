using OrleansDif.Protection;

namespace OrleansDif.Grains.Tests;

[Collection(ClusterCollection.Name)]
public class DiskTests(ClusterFixture fixture)
{
    private readonly IGrainFactory _grains = fixture.Grains;

    private static (byte[] Data, byte[] Pi) Command(VolumeConfig v, long lba, int sectors, int seed)
    {
        var scheme = new ProtectionScheme(new SectorFormat(v.SectorSize), (PiType)v.PiType) { AppTag = v.AppTag };
        byte[] data = TestVolumes.Pattern(seed, sectors * v.SectorSize);
        byte[] pi = new byte[sectors * 8];
        scheme.Generate(data, pi, lba);
        return (data, pi);
    }

    [Theory]
    [InlineData(CheckKind.Guard)]
    [InlineData(CheckKind.App)]
    [InlineData(CheckKind.Ref)]
    public async Task DiskRejectsBadTagAndKeepsOldData(CheckKind check)
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { VersionTags = false }); // plain DIF: the disk checks a fixed application tag
        IDiskGrain disk = _grains.Disk(v, 1);
        var (good, goodPi) = Command(v, 16, 8, 1);
        Assert.True((await disk.Write(16, good, goodPi)).Accepted);

        var (data, pi) = Command(v, 16, 8, 2);
        int at = 3 * 8 + check switch { CheckKind.Guard => 1, CheckKind.App => 3, _ => 7 };
        pi[at] ^= 0x01;
        DiskWriteResult r = await disk.Write(16, data, pi);
        Assert.False(r.Accepted);
        Assert.Equal(check, r.Failure!.Check);
        Assert.Equal(19, r.Failure.Lba);
        Assert.Equal(0x0B, r.Failure.SenseKey);
        Assert.Equal(0x10, r.Failure.Asc);
        Assert.Equal(check switch { CheckKind.Guard => 1, CheckKind.App => 2, _ => 3 }, r.Failure.Ascq);
        Assert.Equal(check switch { CheckKind.Guard => 0x82, CheckKind.App => 0x83, _ => 0x84 }, r.Failure.NvmeStatusCode);

        DiskReadResult back = await disk.Read(16, 8);
        Assert.Equal(good, back.Data);                // nothing of the rejected command was written
        DiskStats stats = await disk.GetStats();
        Assert.Equal(8, stats.SectorsWritten);
        Assert.Equal(check == CheckKind.Guard ? 1 : 0, stats.RejectedGuard);
        Assert.Equal(check == CheckKind.App ? 1 : 0, stats.RejectedApp);
        Assert.Equal(check == CheckKind.Ref ? 1 : 0, stats.RejectedRef);
    }

    [Fact]
    public async Task ABatchRunsEachCommandWithItsOwnResult()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { VersionTags = false });
        IDiskGrain disk = _grains.Disk(v, 0);
        int spp = v.SectorsPerPage;
        var (old, oldPi) = Command(v, 2 * spp, spp, 30);
        Assert.True((await disk.WritePages(2 * spp, old, oldPi, [10])).Accepted);

        var (a, aPi) = Command(v, 0, 2 * spp, 31);           // two pages, good
        var (b, bPi) = Command(v, 2 * spp, spp, 32);         // older than what the disk holds: fenced
        var (c, cPi) = Command(v, 4 * spp, spp, 33);         // a bad guard tag
        cPi[1] ^= 0x01;
        DiskWriteResult[] r = await disk.WritePageBatch(
            [new DiskCommand(0, a, aPi, [5, 5]), new DiskCommand(2 * spp, b, bPi, [9]), new DiskCommand(4 * spp, c, cPi, [5])]);
        Assert.Equal(3, r.Length);
        Assert.True(r[0].Accepted);
        Assert.True(r[1].Stale);
        Assert.False(r[2].Accepted);
        Assert.Equal(CheckKind.Guard, r[2].Failure!.Check);
        Assert.Equal(a, (await disk.Read(0, 2 * spp)).Data);
        Assert.Equal(old, (await disk.Read(2 * spp, spp)).Data);
    }

    [Fact]
    public async Task ABatchWithItsFlushLeavesThatBatchAndEveryEarlierWriteOnTheMedium()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { VersionTags = false });
        IDiskGrain disk = _grains.Disk(v, 0);
        int spp = v.SectorsPerPage;
        var (early, earlyPi) = Command(v, 4 * spp, spp, 50);
        Assert.True((await disk.WritePages(4 * spp, early, earlyPi, [7])).Accepted); // in the cache only
        Assert.Equal(0, await disk.FlushedVersion(4 * spp));
        long flushesBefore = (await disk.GetStats()).Flushes;

        var (a, aPi) = Command(v, 0, 2 * spp, 51);
        var (c, cPi) = Command(v, 2 * spp, spp, 52);
        cPi[1] ^= 0x01; // a bad guard tag: refused, the rest goes on
        DiskFlushedBatch batch = await disk.WritePageBatchAndFlush([new DiskCommand(0, a, aPi, [3, 3]), new DiskCommand(2 * spp, c, cPi, [3])]);
        Assert.True(batch.Results[0].Accepted);
        Assert.False(batch.Results[1].Accepted);
        Assert.Equal(batch.Results[0].Boot, batch.Boot);
        Assert.Equal(3, await disk.FlushedVersion(0));
        Assert.Equal(3, await disk.FlushedVersion(spp));
        Assert.Equal(7, await disk.FlushedVersion(4 * spp)); // landed before the call: the same flush took it
        Assert.Equal(0, await disk.FlushedVersion(2 * spp));
        Assert.Equal(flushesBefore + 1, (await disk.GetStats()).Flushes);
        Assert.Equal(a, (await disk.Read(0, 2 * spp)).Data);
    }

    [Fact]
    public async Task AMalformedCommandRefusesTheWholeBatchAndNothingIsWritten()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { VersionTags = false });
        IDiskGrain disk = _grains.Disk(v, 0);
        int spp = v.SectorsPerPage;
        DiskStats before = await disk.GetStats();
        var (a, aPi) = Command(v, 0, spp, 40);
        var (b, bPi) = Command(v, spp, spp, 41);
        var (half, halfPi) = Command(v, 2 * spp, spp / 2, 42);
        var e = await Assert.ThrowsAsync<StorageException>(() => disk.WritePageBatch(
            [new DiskCommand(0, a, aPi, [1]), new DiskCommand(spp, b, bPi, [1]), new DiskCommand(2 * spp, half, halfPi, [1])]));
        Assert.Equal(StorageError.OutOfRange, e.Error);
        e = await Assert.ThrowsAsync<StorageException>(() => disk.WritePageBatch(
            [new DiskCommand(0, a, aPi, [1]), new DiskCommand(spp, b, bPi[..^8], [1])]));
        Assert.Equal(StorageError.PiCountMismatch, e.Error);
        e = await Assert.ThrowsAsync<StorageException>(() => disk.WritePageBatch([]));
        Assert.Equal(StorageError.EmptyBuffer, e.Error);
        Assert.Equal(before.SectorsWritten, (await disk.GetStats()).SectorsWritten);
        Assert.Equal(new byte[2 * spp * v.SectorSize], (await disk.Read(0, 2 * spp)).Data);
    }

    [Fact]
    public async Task WithWriteChecksOffABadTupleIsStoredButReadsStillCatchIt()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        IDiskGrain disk = _grains.Disk(v, 0);
        var (data, pi) = Command(v, 40, 2, 9);
        pi[1] ^= 0x01;
        await disk.SetVerifyOnWrite(false);
        try
        {
            Assert.True((await disk.Write(40, data, pi)).Accepted);
        }
        finally
        {
            await disk.SetVerifyOnWrite(true);
        }
        StorageException e = await Assert.ThrowsAsync<StorageException>(() => disk.Read(40, 2));
        Assert.Equal(40, e.Failure!.Lba);
        Assert.Equal(CheckKind.Guard, e.Failure.Check);
        Assert.False((await disk.Write(40, data, pi)).Accepted); // checks back on
        // Leave the image clean for the scrub at the end of the collection.
        var (good, goodPi) = Command(v, 40, 2, 9);
        Assert.True((await disk.Write(40, good, goodPi)).Accepted);
    }

    [Fact]
    public async Task DisksOfAVolumeAreSpreadOverTheSilos()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { Disks = 6 });
        string[] silos = await Task.WhenAll(Enumerable.Range(0, 6).Select(async d => (await _grains.Disk(v, d).GetStats()).Silo));
        Assert.Equal(ClusterFixture.Silos, silos.Distinct().Count());
        for (int d = 0; d < 3; d++)
        {
            Assert.Equal(silos[d], silos[d + 3]); // disk d and d + 3 share a silo: d mod 3
        }
    }

    [Fact]
    public async Task BitFlippedInImageIsReportedOnNextRead()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        IPageGrain page = _grains.Page(v, 17);
        byte[] a = TestVolumes.Pattern(80);
        await page.Write(0, a, false);
        Assert.True((await _grains.Flusher(v).Fsync(17, 1)).Durable);
        var (diskNo, lba) = v.Locate(17);
        IDiskGrain disk = _grains.Disk(v, diskNo);
        string image = (await disk.GetStats()).ImagePath;
        long offset = (lba + 2) * 520 + 77;
        FlipBit(image, offset);
        try
        {
            StorageException e = await Assert.ThrowsAsync<StorageException>(() => disk.Read(lba, 8));
            Assert.Equal(StorageError.IntegrityError, e.Error);
            Assert.Equal(lba + 2, e.Failure!.Lba);
            Assert.Equal(CheckKind.Guard, e.Failure.Check);
            Assert.Equal(1, (await disk.GetStats()).ReadErrors);
            Assert.False(Scrubber.Scrub(image).Clean);

            // A page loading from that sector gets the error too, never the corrupt data.
            await page.Deactivate();
            StorageException pe = await Assert.ThrowsAsync<StorageException>(() => page.Read(0, 4096));
            Assert.Equal(StorageError.IntegrityError, pe.Error);
        }
        finally
        {
            FlipBit(image, offset);
        }
        Assert.Equal(a, await page.Read(0, 4096));
        Assert.True(Scrubber.Scrub(image).Clean);
    }

    private static void FlipBit(string path, long offset)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        f.Position = offset;
        int b = f.ReadByte();
        f.Position = offset;
        f.WriteByte((byte)(b ^ 0x20));
        f.Flush(true);
    }
}
