namespace OrleansDif;

/// <summary>Which protection check failed: guard, application tag or reference tag.</summary>
public enum CheckKind
{
    Guard,
    App,
    Ref,
    /// <summary>
    /// The application tag carries an older page version than the page's last durable one: a lost write
    /// (reported on the wire as an application tag check failure).
    /// </summary>
    Version,
}

/// <summary>A protection failure reported by a disk, in T10 / SCSI / NVMe terms.</summary>
[GenerateSerializer, Immutable]
public sealed record ProtectionFailure(
    [property: Id(0)] long Lba,
    [property: Id(1)] CheckKind Check,
    [property: Id(2)] ulong Expected,
    [property: Id(3)] ulong Actual)
{
    /// <summary>SCSI sense key ABORTED COMMAND.</summary>
    public byte SenseKey => 0x0B;
    public byte Asc => 0x10;
    public byte Ascq => (byte)(Check switch { CheckKind.Guard => 1, CheckKind.App or CheckKind.Version => 2, _ => 3 });
    public byte NvmeStatusCodeType => 2;
    public byte NvmeStatusCode => (byte)(Check switch { CheckKind.Guard => 0x82, CheckKind.App or CheckKind.Version => 0x83, _ => 0x84 });

    public override string ToString() =>
        $"LBA {Lba} {Check} check failed (expected 0x{Expected:X}, actual 0x{Actual:X}; SCSI {SenseKey:X2}/{Asc:X2}/{Ascq:X2}; NVMe {NvmeStatusCodeType}/0x{NvmeStatusCode:X2})";
}

/// <summary>A multi-sector write of contiguous whole pages: data, one PI tuple per sector, and each page's version.</summary>
[GenerateSerializer, Immutable]
public sealed record DiskCommand(
    [property: Id(0)] long Lba,
    [property: Id(1)] byte[] Data,
    [property: Id(2)] byte[] Pi,
    [property: Id(3)] long[] Versions)
{
    public int Pages => Versions.Length;
}

/// <summary>
/// Outcome of a disk write command: accepted into the disk's volatile write cache (durable after a flush of the disk
/// activation <see cref="Boot"/>), rejected by a PI check (<see cref="Failure"/>), or refused as stale (a page of it
/// is older than what the disk holds for that page): nothing written either way.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record DiskWriteResult(
    [property: Id(0)] bool Accepted,
    [property: Id(1)] ProtectionFailure? Failure,
    [property: Id(2)] bool Stale = false,
    [property: Id(3)] long Boot = 0,
    [property: Id(4)] long Landed = 0)
{
    public static readonly DiskWriteResult Ok = new(true, null);
}

/// <summary>
/// The results of a batch of page commands and the disk activation whose flush followed them; the flush put on the
/// medium every write of that activation up to landing <see cref="FlushedUpTo"/> (a write's <see cref="DiskWriteResult.Landed"/>).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record DiskFlushedBatch(
    [property: Id(0)] DiskWriteResult[] Results,
    [property: Id(1)] long Boot,
    [property: Id(2)] long FlushedUpTo = 0);

/// <summary>
/// A page slot of a mirror set's copy found failing a check and rewritten from a good copy: at
/// <see cref="Lba"/> (the page's first) of copy <see cref="Copy"/> (0: the primary), the check that failed.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record RepairRecord(
    [property: Id(0)] long Lba,
    [property: Id(1)] int Copy,
    [property: Id(2)] CheckKind Check);

/// <summary>
/// A scrub of one disk (every copy of a mirror set): page slots compared, rewritten because a check failed on one
/// copy (<see cref="Repaired"/>), written to a copy that was behind (<see cref="Resynced"/>), failing on every copy
/// that could stand in (<see cref="Unrepairable"/>), and still out of sync (a copy unreachable, or ahead of the primary).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ScrubResult(
    [property: Id(0)] long Slots,
    [property: Id(1)] long Repaired,
    [property: Id(2)] long Resynced,
    [property: Id(3)] long Unrepairable,
    [property: Id(4)] int OutOfSync);

/// <summary>A page read from its disk for a page activation: data and PI (verified), the version the disk holds for it, and a new epoch when asked.</summary>
[GenerateSerializer, Immutable]
public sealed record DiskPageRead(
    [property: Id(0)] byte[] Data,
    [property: Id(1)] byte[] Pi,
    [property: Id(2)] long HeldVersion,
    [property: Id(3)] long Epoch,
    [property: Id(4)] ProtectionFailure? Failure = null,
    [property: Id(5)] string? Error = null);

/// <summary>Sectors read from a disk; the PI of each was verified.</summary>
[GenerateSerializer, Immutable]
public sealed record DiskReadResult([property: Id(0)] byte[] Data, [property: Id(1)] byte[] Pi);

/// <summary>Counters of one disk.</summary>
[GenerateSerializer, Immutable]
public sealed record DiskStats(
    [property: Id(0)] long SectorsWritten,
    [property: Id(1)] long SectorsRead,
    [property: Id(2)] long RejectedGuard,
    [property: Id(3)] long RejectedApp,
    [property: Id(4)] long RejectedRef,
    [property: Id(5)] long ReadErrors,
    [property: Id(6)] long Commands,
    [property: Id(7)] string ImagePath,
    [property: Id(8)] string Silo,
    [property: Id(9)] double VerifyMs,
    [property: Id(10)] long Flushes = 0,
    [property: Id(11)] long StaleRefused = 0,
    [property: Id(12)] long MetadataCommits = 0,
    [property: Id(13)] long Repaired = 0,
    [property: Id(14)] long Resynced = 0,
    [property: Id(15)] int OutOfSync = 0,
    [property: Id(16)] long Unrepairable = 0);

/// <summary>Page states of the page cache.</summary>
public enum PageState
{
    Clean,
    Dirty,
    Writeback,
}

/// <summary>Outcome of a write or a store.</summary>
public enum WriteStatus
{
    /// <summary>Applied; <see cref="WriteResult.Version"/> is the page's new version.</summary>
    Ok,
    /// <summary>Refused: the page is under writeback and the caller did not ask to wait (EAGAIN).</summary>
    UnderWriteback,
}

[GenerateSerializer, Immutable]
public sealed record WriteResult(
    [property: Id(0)] WriteStatus Status,
    [property: Id(1)] long Version,
    [property: Id(2)] double StallMs,
    [property: Id(3)] bool Faulted,
    [property: Id(4)] long Activation = 0,
    [property: Id(5)] long LoadedVersion = 0);

/// <summary>A page's state as seen from outside.</summary>
[GenerateSerializer, Immutable]
public sealed record PageInfo(
    [property: Id(0)] PageState State,
    [property: Id(1)] long Version,
    [property: Id(2)] long DurableVersion,
    [property: Id(3)] int ValidTagSectors,
    [property: Id(4)] int WritableMappings,
    [property: Id(5)] int RevokedMappings,
    [property: Id(6)] int HeldWriters,
    [property: Id(7)] string Silo,
    [property: Id(8)] bool Poisoned = false,
    [property: Id(9)] long Activation = 0,
    [property: Id(10)] long LoadedVersion = 0,
    [property: Id(11)] bool LostWrites = false,
    [property: Id(12)] long StaleIntentEpoch = 0,
    [property: Id(13)] long StaleIntentFlusher = 0,
    [property: Id(14)] long WrittenBoot = 0,
    [property: Id(15)] long StaleIntentLastAcked = -1,
    [property: Id(16)] long AckTable = 0,
    [property: Id(17)] long AckTableEntryAtLoad = -1,
    [property: Id(18)] long StaleIntentPeriodStart = -1);

/// <summary>What a page hands to writeback when it moves Dirty → Writeback.</summary>
public enum BeginStatus
{
    Started,
    /// <summary>The page is clean: nothing to write.</summary>
    NotDirty,
    /// <summary>Another writeback of this page is under way.</summary>
    Busy,
    /// <summary>
    /// The page's memory is corrupt (its content no longer matches the guard tags cached at copy-in): it is
    /// never written back; reads fail and fsync reports it until a whole-page write replaces the content.
    /// </summary>
    Poisoned,
}

/// <summary>
/// A page under writeback: its content, the guard tags cached at copy-in (valid where the bit of
/// <see cref="ValidTags"/> is set), its version and the writeback id that must end it. A writeback that started
/// carries the page's state as <see cref="IPageGrain.GetInfo"/> gives it at that moment (<see cref="Info"/>): an fsync
/// that writes a page back itself needs not ask it first.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record WritebackSnapshot(
    [property: Id(0)] BeginStatus Status,
    [property: Id(1)] Guid WritebackId,
    [property: Id(2)] long Version,
    [property: Id(3)] byte[] Content,
    [property: Id(4)] ulong[] Tags,
    [property: Id(5)] ulong ValidTags,
    [property: Id(6)] bool Copied,
    [property: Id(7)] long DirtyGeneration = 0,
    [property: Id(8)] PageInfo? Info = null);

public enum EndStatus
{
    /// <summary>Ended; the page is clean.</summary>
    Ended,
    /// <summary>Ended, but the page is dirty again (changed during writeback, or the writeback failed).</summary>
    EndedDirty,
    /// <summary>The writeback id is not the page's current one (ended already, or its lease expired).</summary>
    StaleWriteback,
}

/// <summary>Writeback counters of a volume.</summary>
[GenerateSerializer, Immutable]
public sealed record WritebackStats(
    [property: Id(0)] long Pages,
    [property: Id(1)] long Commands,
    [property: Id(2)] long CrcComputed,
    [property: Id(3)] long CrcReused,
    [property: Id(4)] long RejectedGuard,
    [property: Id(5)] long RejectedApp,
    [property: Id(6)] long RejectedRef,
    [property: Id(7)] long Retries,
    [property: Id(8)] long BounceCopies,
    [property: Id(9)] int DirtyPages,
    [property: Id(10)] long Throttled,
    [property: Id(11)] double IoLatencyP50Ms,
    [property: Id(12)] double IoLatencyP99Ms,
    [property: Id(13)] long PoisonedPages = 0,
    [property: Id(14)] long LostPages = 0,
    [property: Id(15)] long StaleCommands = 0,
    [property: Id(16)] long Flushes = 0,
    [property: Id(17)] long ExpiredWritebacks = 0,
    [property: Id(18)] long IntentCommits = 0,
    [property: Id(19)] long Redirtied = 0);

/// <summary>Whether a version of a page, as an fsync saw it in one activation, is durable.</summary>
public enum DurableStatus
{
    NotYet,
    Durable,
    /// <summary>The page came back in a new activation without acknowledged writes of the one the fsync saw.</summary>
    Lost,
}

/// <summary>
/// A point in a volume's error sequence (as Linux's <c>errseq_t</c>): the number of the last error recorded when it was
/// taken (numbers go on across flusher activations), and the flusher activation that gave it (for people). A handle samples one when it opens and hands it to each fsync, which reports
/// the errors recorded after it, then the handle keeps the mark the fsync returns: every handle open when an error
/// happened is told once; a handle opened after it is not told.
/// </summary>
[GenerateSerializer, Immutable]
public readonly record struct ErrorMark([property: Id(0)] long Flusher, [property: Id(1)] long Sequence);

/// <summary>One recorded writeback error: the pages that lost acknowledged writes, and why.</summary>
[GenerateSerializer, Immutable]
public sealed record WritebackError(
    [property: Id(0)] long Flusher,
    [property: Id(1)] long Sequence,
    [property: Id(2)] int[] Pages,
    [property: Id(3)] string Cause);

/// <summary>
/// Outcome of an fsync: durable, or not, with the pages by cause (callers switch on these, never on the text):
/// <see cref="LostPages"/> lost acknowledged writes with a silo (the pages of <see cref="Errors"/>),
/// <see cref="PoisonedPages"/> hold memory corrupted behind the page cache, <see cref="PendingPages"/> were still
/// not durable when the fsync gave up. <see cref="Error"/> says the same for people. <see cref="Errors"/>: the
/// writeback errors recorded since the caller's mark (or, without one, by this fsync); <see cref="Mark"/>: the
/// error sequence when it returned, the caller's next mark.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record FsyncResult(
    [property: Id(0)] bool Durable,
    [property: Id(1)] int Pages,
    [property: Id(2)] string? Error,
    [property: Id(3)] int[]? LostPages = null,
    [property: Id(4)] int[]? PoisonedPages = null,
    [property: Id(5)] int[]? PendingPages = null,
    [property: Id(6)] WritebackError[]? Errors = null,
    [property: Id(7)] ErrorMark Mark = default)
{
    /// <summary>The fsync failed because pages lost acknowledged writes with their silo (EIO).</summary>
    public bool ReportsLoss => LostPages is { Length: > 0 };

    /// <summary>The fsync failed because pages are poisoned by memory corruption (EIO).</summary>
    public bool ReportsPoison => PoisonedPages is { Length: > 0 };
}

/// <summary>Faults that can be injected when the cluster config enables fault injection.</summary>
public enum FaultKind
{
    /// <summary>A bit of a page's content flips after copy-in (memory corruption in the page cache).</summary>
    PageBitflip,
    /// <summary>A bit of a command's data flips between writeback grain and disk grain.</summary>
    TransitBitflip,
    /// <summary>A bit of a stored sector flips in the disk image.</summary>
    MediaBitrot,
    /// <summary>The disk persists a command at the wrong LBA.</summary>
    MisdirectedWrite,
    /// <summary>A multi-sector command persists only partly, the last sector only half, as if power failed.</summary>
    TornWrite,
    /// <summary>The disk acknowledges a command and persists nothing.</summary>
    LostWrite,
}

public static class FaultKinds
{
    public static string Name(FaultKind kind) => kind switch
    {
        FaultKind.PageBitflip => "page-bitflip",
        FaultKind.TransitBitflip => "transit-bitflip",
        FaultKind.MediaBitrot => "media-bitrot",
        FaultKind.MisdirectedWrite => "misdirected-write",
        FaultKind.TornWrite => "torn-write",
        _ => "lost-write",
    };

    public static FaultKind Parse(string text) =>
        Enum.GetValues<FaultKind>().FirstOrDefault(k => Name(k) == text.Trim().ToLowerInvariant(), (FaultKind)(-1)) is var k && Enum.IsDefined(k)
            ? k
            : throw new StorageException(StorageError.InvalidConfig,
                $"unknown fault '{text}' ({string.Join(", ", Enum.GetValues<FaultKind>().Select(Name))})");
}

/// <summary>
/// An injected fault as it was applied: its kind, the first LBA and sector count of the command (or the sector)
/// it hit, and for a misdirected write the LBA the data landed on instead. <see cref="Page"/> is the volume page
/// for faults applied by the flusher or a page, -1 for disk faults (the LBA says where).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record FaultRecord(
    [property: Id(0)] FaultKind Kind,
    [property: Id(1)] long Lba,
    [property: Id(2)] int Sectors,
    [property: Id(3)] long TargetLba,
    [property: Id(4)] int Page);

/// <summary>What a volume's flusher saw: pages whose commands disks rejected, pages found poisoned, faults it applied.</summary>
[GenerateSerializer, Immutable]
public sealed record WritebackEvents(
    [property: Id(0)] int[] RejectedPages,
    [property: Id(1)] int[] PoisonedPages,
    [property: Id(2)] FaultRecord[] Applied);
