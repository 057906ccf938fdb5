using OrleansDif.Protection;

namespace OrleansDif.Grains;

/// <summary>
/// What an emulated DIF disk does with a command, as plain transitions over its <see cref="CachedDisk"/>: check a write's
/// PI, land it in the cache fenced by page versions, read with every tuple verified, and load a page for a new page
/// activation (claim its slot, read and verify it). No Orleans
/// types, no awaits: <see cref="DiskGrain"/> is a shell around it (validation of the request, counters, fault
/// injection, step hooks), and the protocol simulation drives the same class.
/// </summary>
public sealed class DiskDevice(VolumeConfig config, CachedDisk disk)
{
    private readonly ProtectionScheme _scheme = GrainHelpers.Scheme(config);

    public CachedDisk Cache => disk;

    /// <summary>This disk activation: a flush that answers with another boot means the cache it had was lost.</summary>
    public long Boot => disk.Boot;

    /// <summary>The check of a write command before anything is cached: the first failing sector, or null.</summary>
    public PiError? Verify(ReadOnlySpan<byte> data, ReadOnlySpan<byte> pi, long lba) => _scheme.Verify(data, pi, lba);

    /// <summary>
    /// A checked command into the write cache. With page versions, fenced: refused whole (<see cref="FencedWrite.Stale"/>)
    /// when the disk holds, or a page activation claimed, a newer version of any of its pages.
    /// </summary>
    public FencedWrite Land(long lba, ReadOnlySpan<byte> data, ReadOnlySpan<byte> pi, ReadOnlySpan<long> versions)
    {
        if (versions.IsEmpty)
        {
            disk.Write(lba, data, pi);
            return FencedWrite.Accepted;
        }
        return disk.WritePages(lba, data, pi, versions);
    }

    /// <summary>
    /// What a faulty disk does with a checked command (fault injection): the fence records it like any page command
    /// (the controller's record says written, a stale one is refused as usual), and the medium gets
    /// <paramref name="fault"/>'s damage instead of the data: a misdirected write lands one command-length further
    /// on (wrapping) with the tuples of the intended sectors; a torn write lands its first half, then half of the
    /// next sector under that sector's new tuple; a lost write lands nothing. The first LBA the damage went to, or
    /// null when the command was refused as stale.
    /// </summary>
    public long? LandFaulty(FaultKind fault, long lba, ReadOnlySpan<byte> data, ReadOnlySpan<byte> pi, ReadOnlySpan<long> versions)
    {
        if (!versions.IsEmpty && disk.RecordPages(lba, versions) == FencedWrite.Stale)
        {
            return null;
        }
        int size = config.SectorSize;
        int count = data.Length / size;
        switch (fault)
        {
            case FaultKind.MisdirectedWrite:
                long target = MisdirectedTarget(lba, count);
                disk.Write(target, data, pi);
                return target;
            case FaultKind.TornWrite:
                int whole = count / 2;
                if (whole > 0)
                {
                    disk.Write(lba, data[..(whole * size)], pi[..(whole * config.TupleSize)]);
                }
                byte[] raw = new byte[size + config.TupleSize];
                disk.ReadRaw(lba + whole, raw);
                data.Slice(whole * size, size / 2).CopyTo(raw);
                pi.Slice(whole * config.TupleSize, config.TupleSize).CopyTo(raw.AsSpan(size)); // its new tuple, over half-new data
                disk.WriteRaw(lba + whole, raw);
                return lba + whole;
            case FaultKind.LostWrite:
                return lba; // nothing reaches the medium
            default:
                throw new StorageException(StorageError.InvalidConfig, $"{FaultKinds.Name(fault)} is not a fault of a disk command");
        }
    }

    /// <summary>Where a misdirected command of <paramref name="sectors"/> sectors meant for <paramref name="lba"/> lands: one command-length further on, wrapping.</summary>
    public long MisdirectedTarget(long lba, int sectors) => (lba + sectors) % (disk.SectorCount - sectors + 1);

    /// <summary>Reads <paramref name="data"/>.Length bytes from <paramref name="lba"/>, every tuple verified: the first failure, or null.</summary>
    public PiError? Read(long lba, Span<byte> data, Span<byte> pi)
    {
        int size = config.SectorSize;
        int sectors = data.Length / size;
        disk.Read(lba, data, pi);
        for (int i = 0; i < sectors; i++)
        {
            if (_scheme.VerifyAt(data.Slice(i * size, size), pi, i, lba) is PiError error)
            {
                return error;
            }
        }
        return null;
    }

    /// <summary>
    /// A page loads into a new activation: with <paramref name="claim"/>, a new epoch claimed on the slot first (once
    /// this activation has seen the page, no older activation's command lands), then the page read and verified, with
    /// the version the disk holds (a flush cut short by a crash was settled when the disk opened). A page that fails
    /// its check comes back with the failure and no data: never served as good.
    /// </summary>
    public DiskPageRead LoadPage(long lba, bool claim)
    {
        int spp = config.SectorsPerPage;
        long epoch = 0;
        if (claim)
        {
            epoch = disk.NewEpoch();
            disk.Claim(lba, PageVersion.First(epoch));
        }
        byte[] data = new byte[spp * config.SectorSize];
        byte[] pi = new byte[spp * config.TupleSize];
        if (Read(lba, data, pi) is PiError failed)
        {
            ProtectionFailure failure = GrainHelpers.ToFailure(failed);
            return new DiskPageRead([], [], disk.HeldVersion(lba), epoch, failure, failure.ToString());
        }
        return new DiskPageRead(data, pi, disk.HeldVersion(lba), epoch);
    }
}
