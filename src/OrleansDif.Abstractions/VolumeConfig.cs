namespace OrleansDif;

/// <summary>How a volume writes pages back (see DESIGN.md).</summary>
public enum WritebackPolicy
{
    /// <summary>The cure: writes refused or held during writeback; guard tags cached at copy-in are reused.</summary>
    Stable,
    /// <summary>Snapshot the page at writeback start; writers continue on the live page.</summary>
    Bounce,
    /// <summary>The 2010 bug: tags from one read of the page, data read again later for the transfer.</summary>
    Unstable,
}

/// <summary>The guard tag of a volume's sectors.</summary>
public enum GuardKind
{
    /// <summary>T10 DIF: a 16-bit CRC-16/T10-DIF guard in an 8-byte tuple.</summary>
    Crc16,
    /// <summary>NVMe 64b Guard: a 64-bit CRC-64/NVME guard in a 16-byte tuple (48-bit reference tag).</summary>
    Crc64,
}

/// <summary>Everything that defines a volume. Validated by <see cref="Validate"/> before a volume is created.</summary>
[GenerateSerializer, Immutable]
public sealed record VolumeConfig
{
    public const int PageSize = 4096;

    [Id(0)] public required string Id { get; init; }
    /// <summary>Size in 4 KiB pages.</summary>
    [Id(1)] public int Pages { get; init; } = 1024;
    /// <summary>512 or 4096 data bytes per sector (each followed by an 8-byte tuple).</summary>
    [Id(2)] public int SectorSize { get; init; } = 512;
    /// <summary>T10 protection type, 1..3.</summary>
    [Id(3)] public int PiType { get; init; } = 1;
    [Id(4)] public WritebackPolicy Policy { get; init; } = WritebackPolicy.Stable;
    /// <summary>Number of disks the pages are striped over (2 or more).</summary>
    [Id(5)] public int Disks { get; init; } = 2;
    /// <summary>Pages per stripe unit: consecutive pages within a unit are consecutive on one disk.</summary>
    [Id(6)] public int StripePages { get; init; } = 16;
    /// <summary>A dirty page older than this is written back.</summary>
    [Id(7)] public int DirtyAgeMs { get; init; } = 500;
    /// <summary>More dirty pages than this start writeback and throttle writers.</summary>
    [Id(8)] public int DirtyThreshold { get; init; } = 256;
    /// <summary>A writeback not ended within this time expires; the page goes back to Dirty.</summary>
    [Id(9)] public int LeaseMs { get; init; } = 10_000;
    /// <summary>Unstable policy: delay between computing tags and reading the page for the transfer.</summary>
    [Id(10)] public int UnstableDelayMs { get; init; } = 2;
    /// <summary>Compute guard tags at copy-in and cache them (true), or only at writeback (false).</summary>
    [Id(11)] public bool TagsAtCopyIn { get; init; } = true;
    /// <summary>Disks verify every tuple of a write (true) or accept without checking (false, for measurement).</summary>
    [Id(12)] public bool VerifyOnDisk { get; init; } = true;
    /// <summary>Application tag written with every sector and checked by the disks.</summary>
    [Id(13)] public ushort AppTag { get; init; } = 0x0D1F;
    /// <summary>
    /// Carry the low 16 bits of the page version in the application tag of every sector (true), so that a read
    /// finding an older version than the page's last durable one reports a lost write; or the fixed
    /// <see cref="AppTag"/> of plain DIF (false), checked by the disks, which cannot see lost writes.
    /// </summary>
    [Id(14)] public bool VersionTags { get; init; } = true;
    /// <summary>
    /// A store through a mapping ends with the page's mappings write-protected again and its guard tags computed, as
    /// copy-in computes them for a write: the next store faults (page_mkwrite), which checks them before it drops
    /// them. Off: as Linux leaves it, the mapping stays writable until writeback and the page has no tags from the
    /// store until then (memory corruption in that window is written back under fresh, valid tags). Only with
    /// <see cref="TagsAtCopyIn"/>.
    /// </summary>
    [Id(15)] public bool StoreTags { get; init; } = true;
    /// <summary>
    /// Keep a durable dirty log (as md's write-intent bitmap spares a full resync): the first version of each page's
    /// dirty period goes to stable storage, group-committed with other pages', before any write of the period is
    /// acknowledged. After a power loss (which takes the page cache and the acknowledgement table with it) a page's
    /// loss is then judged exactly instead of reported whenever it may have happened. Costs a shared flush per batch
    /// of periods opened, and the wait for it in the latency of each write that opens one. Off (the default): no
    /// cost, and loss reports after a power loss are conservative (a loss is never missed; a page may be reported
    /// that lost nothing).
    /// </summary>
    [Id(16)] public bool DirtyLog { get; init; }
    /// <summary>
    /// Copies of each disk (1: none, 2 or 3: a mirror set per disk, copy c placed c silos further on than the disk, so
    /// on different silos while there are as many silos as copies). Needs <see cref="VersionTags"/>. Copy 0, the
    /// primary, takes every command first and passes what it accepted to the others; a command succeeds when the
    /// primary takes it, and a copy that fails is recorded out of sync and resynced. A read or a scrub meeting a
    /// failed check on one copy serves a good one (same page version, every check passed) and rewrites the bad.
    /// </summary>
    [Id(17)] public int Mirrors { get; init; } = 1;
    /// <summary>
    /// The guard tag: <see cref="GuardKind.Crc16"/> (T10 DIF, 8-byte tuples) or <see cref="GuardKind.Crc64"/> (the NVMe
    /// 64b Guard format, 16-byte tuples). Copy-in caching, reuse and every policy work the same with either.
    /// </summary>
    [Id(18)] public GuardKind Guard { get; init; } = GuardKind.Crc16;

    /// <summary>Bytes of PI after each sector: 8, or 16 with the 64-bit guard.</summary>
    public int TupleSize => Guard == GuardKind.Crc64 ? 16 : 8;

    /// <summary>Parses "crc16" or "crc64".</summary>
    public static GuardKind ParseGuard(string? text) => (text ?? "").Trim().ToLowerInvariant() switch
    {
        "crc16" => GuardKind.Crc16,
        "crc64" => GuardKind.Crc64,
        _ => throw new StorageException(StorageError.InvalidConfig, $"volume field 'guard': '{text}' is not crc16 or crc64"),
    };

    /// <summary>The application tag that carries page version <paramref name="version"/>: never 0xFFFF, the escape value.</summary>
    public static ushort VersionTag(long version) => (ushort)((ulong)version % 0xFFFF);

    /// <summary>
    /// How many versions <paramref name="found"/> is ahead of <paramref name="expected"/> (0: the same; negative:
    /// behind, a lost write). Tags wrap every 65535 versions; a distance is read as the nearer way round.
    /// </summary>
    public static int VersionTagDistance(ushort found, ushort expected)
    {
        int d = (found - expected) % 0xFFFF;
        if (d < 0)
        {
            d += 0xFFFF;
        }
        return d <= 0x7FFF ? d : d - 0xFFFF;
    }

    /// <summary>The application tag of a page written at <paramref name="version"/> on this volume.</summary>
    public ushort AppTagFor(long version) => VersionTags ? VersionTag(version) : AppTag;

    public int SectorsPerPage => PageSize / SectorSize;

    /// <summary>Sectors of one disk: enough for every stripe unit it holds.</summary>
    public long SectorsPerDisk
    {
        get
        {
            long units = (Pages + StripePages - 1) / StripePages;
            long unitsPerDisk = (units + Disks - 1) / Disks;
            return unitsPerDisk * StripePages * SectorsPerPage;
        }
    }

    /// <summary>Where page <paramref name="page"/> lives: its disk and first LBA.</summary>
    public (int Disk, long Lba) Locate(int page)
    {
        int unit = page / StripePages;
        int disk = unit % Disks;
        long diskPage = (long)(unit / Disks) * StripePages + page % StripePages;
        return (disk, diskPage * SectorsPerPage);
    }

    /// <summary>The page stored at <paramref name="lba"/> of disk <paramref name="disk"/>, or -1 when none is.</summary>
    public int PageAt(int disk, long lba)
    {
        if (disk < 0 || disk >= Disks || lba < 0)
        {
            return -1;
        }
        long diskPage = lba / SectorsPerPage;
        long unit = (diskPage / StripePages) * Disks + disk;
        long page = unit * StripePages + diskPage % StripePages;
        return page < Pages ? (int)page : -1;
    }

    /// <summary>Throws <see cref="StorageException"/> with <see cref="StorageError.InvalidConfig"/> naming the bad field.</summary>
    public void Validate()
    {
        static void Check(bool ok, string field, string message)
        {
            if (!ok)
            {
                throw new StorageException(StorageError.InvalidConfig, $"volume field '{field}': {message}");
            }
        }
        Check(!string.IsNullOrWhiteSpace(Id) && Id.Length <= 64 && Id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'),
            "id", $"'{Id}' must be 1..64 letters, digits, '-' or '_'");
        Check(Pages is > 0 and <= 1 << 24, "pages", $"{Pages} must be 1..16777216");
        Check(SectorSize is 512 or 4096, "sectorSize", $"{SectorSize} must be 512 or 4096");
        Check(PiType is >= 1 and <= 3, "piType", $"{PiType} must be 1, 2 or 3");
        Check(Enum.IsDefined(Policy), "policy", $"{Policy} is not stable, bounce or unstable");
        Check(Disks is >= 2 and <= 64, "disks", $"{Disks} must be 2..64");
        Check(StripePages is >= 1 and <= 1024, "stripePages", $"{StripePages} must be 1..1024");
        Check(DirtyAgeMs is >= 1 and <= 600_000, "dirtyAgeMs", $"{DirtyAgeMs} must be 1..600000");
        Check(DirtyThreshold is >= 1, "dirtyThreshold", $"{DirtyThreshold} must be at least 1");
        Check(LeaseMs is >= 10 and <= 600_000, "leaseMs", $"{LeaseMs} must be 10..600000");
        Check(UnstableDelayMs is >= 0 and <= 10_000, "unstableDelayMs", $"{UnstableDelayMs} must be 0..10000");
        Check(Mirrors is >= 1 and <= 3, "mirrors", $"{Mirrors} must be 1, 2 or 3");
        Check(Mirrors == 1 || VersionTags, "mirrors", "a mirrored volume needs versionTags: without them a copy that lost a write passes every check and could stand in for a good one");
        Check(Enum.IsDefined(Guard), "guard", $"{Guard} is not crc16 or crc64");
        Check(AppTag != 0xFFFF, "appTag", "0xFFFF is the escape value: it would turn every check off");
    }

    /// <summary>Parses "stable", "bounce" or "unstable".</summary>
    public static WritebackPolicy ParsePolicy(string? text) => (text ?? "").Trim().ToLowerInvariant() switch
    {
        "stable" => WritebackPolicy.Stable,
        "bounce" => WritebackPolicy.Bounce,
        "unstable" => WritebackPolicy.Unstable,
        _ => throw new StorageException(StorageError.InvalidConfig, $"unknown policy '{text}' (stable, bounce or unstable)"),
    };
}
