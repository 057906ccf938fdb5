using OrleansDif.Protection;

namespace OrleansDif.Grains.Tests;

/// <summary>A volume with the NVMe 64b Guard format (<c>guard: crc64</c>) through the page cache, writeback and disks.</summary>
[Collection(ClusterCollection.Name)]
public class Guard64Tests(ClusterFixture fixture)
{
    private readonly IGrainFactory _grains = fixture.Grains;

    private Task<VolumeConfig> Crc64(Func<VolumeConfig, VolumeConfig>? more = null) =>
        TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => (more ?? (x => x))(c with { Guard = GuardKind.Crc64 }));

    [Fact]
    public async Task PagesGoDownUnderSixtyFourBitGuardsCachedAtCopyIn()
    {
        VolumeConfig v = await Crc64();
        byte[] data = TestVolumes.Pattern(64);
        await _grains.Page(v, 3).Write(0, data, false);
        WritebackStats before = await _grains.Flusher(v).GetStats();
        Assert.True((await _grains.Flusher(v).Fsync(0, v.Pages)).Durable);
        WritebackStats after = await _grains.Flusher(v).GetStats();
        Assert.Equal(v.SectorsPerPage, after.CrcReused - before.CrcReused); // every tag from copy-in, none computed again
        Assert.Equal(0, after.CrcComputed - before.CrcComputed);

        var (disk, lba) = v.Locate(3);
        DiskReadResult stored = await _grains.Disk(v, disk).Read(lba, v.SectorsPerPage);
        Assert.Equal(data, stored.Data);
        Assert.Equal(v.SectorsPerPage * 16, stored.Pi.Length);
        var scheme = new ProtectionScheme(SectorFormat.Of(v.SectorSize, guard64: true), (PiType)v.PiType);
        for (int s = 0; s < v.SectorsPerPage; s++)
        {
            Assert.Equal(Crc64Nvme.Reference(data.AsSpan(s * v.SectorSize, v.SectorSize)), scheme.GuardAt(stored.Pi, s));
        }
        Assert.Equal(data, await _grains.Page(v, 3).ReadDurable()); // version tags read from the 16-byte tuples
        Assert.True(Scrubber.Scrub((await _grains.Disk(v, disk).GetStats()).ImagePath).Clean);
    }

    [Fact]
    public async Task TheDiskRejectsABadSixtyFourBitGuardAndEightByteTuples()
    {
        VolumeConfig v = await Crc64(c => c with { VersionTags = false });
        var scheme = new ProtectionScheme(SectorFormat.Of(v.SectorSize, guard64: true), (PiType)v.PiType) { AppTag = v.AppTag };
        byte[] data = TestVolumes.Pattern(65, 2 * v.SectorSize);
        byte[] pi = new byte[2 * 16];
        scheme.Generate(data, pi, 40);
        byte[] bad = (byte[])pi.Clone();
        bad[16] ^= 0x80;                                       // the top byte of the second sector's guard: no 16 bits of it see this
        DiskWriteResult r = await _grains.Disk(v, 0).Write(40, data, bad);
        Assert.False(r.Accepted);
        Assert.Equal(CheckKind.Guard, r.Failure!.Check);
        Assert.Equal(41, r.Failure.Lba);
        Assert.Equal(Crc64Nvme.Compute(data.AsSpan(v.SectorSize, v.SectorSize)), r.Failure.Expected); // all 64 bits reported
        StorageException e = await Assert.ThrowsAsync<StorageException>(() => _grains.Disk(v, 0).Write(40, data, new byte[2 * 8]));
        Assert.Equal(StorageError.PiCountMismatch, e.Error);
        Assert.Equal(0, (await _grains.Disk(v, 0).GetStats()).SectorsWritten);
        Assert.True((await _grains.Disk(v, 0).Write(40, data, pi)).Accepted);
    }

    [Fact]
    public async Task RotUnderASixtyFourBitGuardIsAnErrorAndAMirrorRepairsIt()
    {
        VolumeConfig plain = await Crc64();
        await _grains.Page(plain, 1).Write(0, TestVolumes.Pattern(66), false);
        Assert.True((await _grains.Flusher(plain).Fsync(0, plain.Pages)).Durable);
        var (disk, lba) = plain.Locate(1);
        await _grains.Disk(plain, disk).InjectFault(FaultKind.MediaBitrot, lba + 2, 1);
        StorageException e = await Assert.ThrowsAsync<StorageException>(() => _grains.Page(plain, 1).ReadDurable());
        Assert.Equal(StorageError.IntegrityError, e.Error);
        Assert.Equal(CheckKind.Guard, e.Failure!.Check);
        await _grains.Page(plain, 1).Write(0, TestVolumes.Pattern(67), false); // written whole again: clean for the end-of-run scrub
        Assert.True((await _grains.Flusher(plain).Fsync(0, plain.Pages)).Durable);

        VolumeConfig mirrored = await Crc64(c => c with { Mirrors = 2 });
        byte[] data = TestVolumes.Pattern(68);
        await _grains.Page(mirrored, 1).Write(0, data, false);
        Assert.True((await _grains.Flusher(mirrored).Fsync(0, mirrored.Pages)).Durable);
        (disk, lba) = mirrored.Locate(1);
        await _grains.Disk(mirrored, disk).InjectFault(FaultKind.MediaBitrot, lba + 2, 1);
        Assert.Equal(data, await _grains.Page(mirrored, 1).ReadDurable());
        Assert.Equal([new RepairRecord(lba, 0, CheckKind.Guard)], await _grains.Disk(mirrored, disk).GetRepairLog());
    }
}
