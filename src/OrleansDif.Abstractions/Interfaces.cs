namespace OrleansDif;

/// <summary>A volume: its configuration, creation, and the entry point for fsync. Key: volume id.</summary>
public interface IVolumeGrain : IGrainWithStringKey
{
    /// <summary>Validates and creates the volume and formats its disks. Creating an existing volume with the same config is a no-op.</summary>
    Task Create(VolumeConfig config);

    /// <summary>The volume's configuration; <see cref="StorageError.UnknownVolume"/> when it was never created.</summary>
    [AlwaysInterleave]
    Task<VolumeConfig> GetConfig();
}

/// <summary>One 4 KiB page of a volume's page cache. Key: "volume/page".</summary>
public interface IPageGrain : IGrainWithStringKey
{
    /// <summary>
    /// Copy-in: copies <paramref name="data"/> at <paramref name="offset"/>, refreshing the cached guard tags of the
    /// touched sectors. The page only reads <paramref name="data"/>, during the call, and the caller leaves it alone
    /// until the call returns: a call in the same silo passes it without a defensive copy.
    /// </summary>
    Task<WriteResult> Write(int offset, [Immutable] byte[] data, bool wait);

    /// <summary>A copy of the page's bytes (made for this answer and never changed: passed on without another copy).</summary>
    [return: Immutable]
    Task<byte[]> Read(int offset, int length);

    /// <summary>Maps the page; returns the mapping id.</summary>
    Task<long> Map(bool writable);

    /// <summary>A store through a mapping: no CRC on this path; the cached tags become invalid.</summary>
    Task<WriteResult> Store(long mapping, int offset, byte[] data, bool wait);

    Task Unmap(long mapping);

    [AlwaysInterleave]
    Task<PageInfo> GetInfo();

    /// <summary>Dirty → Writeback. Revokes writable mappings under the stable policy.</summary>
    [AlwaysInterleave]
    Task<WritebackSnapshot> BeginWriteback();

    /// <summary>The page's content now: the unstable policy's second read (the DMA).</summary>
    [AlwaysInterleave]
    Task<byte[]> ReadForTransfer(Guid writebackId);

    /// <summary>
    /// Ends a writeback: success → Clean (or Dirty if changed since), failure → Dirty. <paramref name="diskBoot"/>:
    /// the disk activation whose write cache took the data (durable once that activation flushed).
    /// <paramref name="writtenTags"/>: the guard tag written for each sector, which the page caches where it has none.
    /// </summary>
    [AlwaysInterleave]
    Task<EndStatus> EndWriteback(Guid writebackId, bool success, long diskBoot = 0, ulong[]? writtenTags = null);

    /// <summary>
    /// Reads the page from its disk (not the cache): the disk checks guard and reference tags, the page checks
    /// the version in the application tags against its last durable version (<see cref="CheckKind.Version"/>:
    /// a lost or torn write). <see cref="StorageError.IntegrityError"/> when any check fails.
    /// </summary>
    [AlwaysInterleave]
    Task<byte[]> ReadDurable();

    /// <summary>Waits until the page's durable version reaches <paramref name="version"/> or the timeout passes.</summary>
    [AlwaysInterleave]
    Task<bool> WaitDurable(long version, TimeSpan timeout);

    /// <summary>
    /// Whether <paramref name="version"/> of activation <paramref name="activation"/> is durable. Versions of two
    /// activations are not comparable: a page that came back losing writes numbers its next writes from where its
    /// disk was, and must not pass those off as the lost ones.
    /// </summary>
    [AlwaysInterleave]
    Task<DurableStatus> CheckDurable(long version, long activation);

    /// <summary>
    /// Fault injection (<see cref="FaultKind.PageBitflip"/>): flips bit <paramref name="bit"/> of the content
    /// without touching the cached guard tags. Refused with <see cref="StorageError.FaultInjectionDisabled"/>
    /// unless the cluster enables fault injection.
    /// </summary>
    Task InjectBitflip(int bit);

    /// <summary>Asks the runtime to deactivate this page when idle (tests: a dirty page must survive it).</summary>
    Task Deactivate();

    /// <summary>
    /// The flusher has reported this page's lost writes to an fsync caller: the page stops reporting them
    /// (as an error sequence is reported once).
    /// </summary>
    [AlwaysInterleave]
    Task LossReported();

    /// <summary>
    /// The disk lost its write cache (its silo died) before <paramref name="version"/> was flushed: if that version is
    /// of this activation the page is dirty again (it still holds the content) and true; false if it is not.
    /// </summary>
    [AlwaysInterleave]
    Task<bool> Redirty(long version);
}

/// <summary>The flusher of one volume: tracks dirty pages and writes them back. Key: volume id.</summary>
public interface IWritebackGrain : IGrainWithStringKey
{
    /// <summary>
    /// A page became dirty (or was written under writeback) at <paramref name="version"/>, its
    /// <paramref name="generation"/>-th registration. Throttles the caller while the volume has too many dirty pages.
    /// <paramref name="intentCommits"/>: write-intent commits the page made since its last registration (counted).
    /// Returns the flusher activation's incarnation, which the page records in its write intent.
    /// <paramref name="ackTable"/>: the id of the acknowledgement table the page records into (0: none).
    /// </summary>
    Task<long> MarkDirty(int page, long version, long generation, int intentCommits = 0, long ackTable = 0);

    /// <summary>
    /// A deactivating page hands over its content: written (fenced by its version) and the disk flushed. True when
    /// durable.
    /// </summary>
    [AlwaysInterleave]
    Task<bool> Evict(int page, WritebackSnapshot snapshot);

    /// <summary>
    /// A page came up with its write intent set: its previous activation died holding acknowledged writes that
    /// were not on the disks. The next fsync covering it fails and names it.
    /// </summary>
    Task ReportLost(int page);

    /// <summary>
    /// Returns when every page of the range dirtied before the call is durable on the disks. Reports (not durable)
    /// the writeback errors of the volume recorded after <paramref name="since"/> (a handle's mark, errseq-style:
    /// <see cref="ErrorMark"/>), or without a mark only those this fsync found itself.
    /// </summary>
    Task<FsyncResult> Fsync(int firstPage, int pageCount, ErrorMark? since = null);

    /// <summary>The volume's error sequence now: what a handle records when it opens.</summary>
    [AlwaysInterleave]
    Task<ErrorMark> SampleErrors();

    /// <summary>
    /// Writes back the dirty pages of the range into the disks' write caches and returns how many it started,
    /// without flushing anything (as sync_file_range with SYNC_FILE_RANGE_WRITE): not durable until an fsync.
    /// </summary>
    Task<int> StartWriteback(int firstPage, int pageCount);

    Task<WritebackStats> GetStats();

    /// <summary>Fault injection (<see cref="FaultKind.TransitBitflip"/>): the next <paramref name="commands"/> commands get one data bit flipped after their PI was built.</summary>
    Task InjectTransitBitflips(int commands);

    /// <summary>Fault injection (<see cref="FaultKind.TransitBitflip"/>): the next command that carries <paramref name="page"/> gets one bit of that page flipped after its PI was built.</summary>
    Task InjectTransitBitflip(int page);

    /// <summary>Pages whose commands a disk rejected, pages found poisoned, and the transit faults applied, since activation.</summary>
    Task<WritebackEvents> GetEvents();
}

/// <summary>
/// An emulated DIF-formatted disk. Key: "volume/disk"; on a mirrored volume that is the mirror set's primary (copy 0),
/// and its copies are "volume/disk/copy" (<see cref="GrainKeys.DiskCopy"/>), written by the primary only.
/// </summary>
public interface IDiskGrain : IGrainWithStringKey
{
    /// <summary>Creates (formats) the disk image, or opens it when it exists with the same geometry.</summary>
    Task Format(VolumeConfig config, int disk);

    /// <summary>
    /// A multi-sector write: every tuple verified before anything is cached; durable after the next <see cref="Flush"/>.
    /// Refused (<see cref="StorageError.InvalidConfig"/>) on a mirrored volume, whose disks take page commands only.
    /// </summary>
    Task<DiskWriteResult> Write(long lba, byte[] data, byte[] pi);

    /// <summary>
    /// A write of whole pages with the page version each carries (fencing): refused whole as stale when any page is
    /// older than what the disk holds or a newer page activation claimed; else as <see cref="Write"/>.
    /// </summary>
    Task<DiskWriteResult> WritePages(long lba, byte[] data, byte[] pi, long[] versions);

    /// <summary>
    /// Several page commands submitted at once (a queue of commands behind one doorbell): each runs as
    /// <see cref="WritePages"/> would, in order, with its own result. The whole batch is checked first: a malformed
    /// command refuses the batch and none runs.
    /// </summary>
    Task<DiskWriteResult[]> WritePageBatch(DiskCommand[] commands);

    /// <summary>
    /// <see cref="WritePageBatch"/>, then FLUSH CACHE in the same call (a queue of writes and a flush command behind
    /// one doorbell, as fsync's writeback sends them): when it returns, every write this disk accepted before the
    /// flush, this batch's and earlier ones, is on the medium of activation <see cref="DiskFlushedBatch.Boot"/>.
    /// </summary>
    Task<DiskFlushedBatch> WritePageBatchAndFlush(DiskCommand[] commands);

    /// <summary>
    /// Reads a page (verified) with the version the disk holds for it. With <paramref name="claim"/>: hands out a
    /// new epoch and refuses from then on every command of an older one for this page (a new page activation).
    /// </summary>
    Task<DiskPageRead> LoadPage(long lba, bool claim);

    /// <summary>The version of the page at <paramref name="lba"/> that is on the medium (flushed), not only in the cache.</summary>
    [AlwaysInterleave]
    Task<long> FlushedVersion(long lba);

    /// <summary>FLUSH CACHE: every write accepted before the call is on the medium. Returns the disk activation (boot) it flushed; concurrent flushes coalesce.</summary>
    [AlwaysInterleave]
    Task<long> Flush();

    /// <summary>
    /// <see cref="Flush"/> of this disk alone (not its mirror copies), saying how far it reached: every write of
    /// activation <see cref="DiskFlushedBatch.Boot"/> up to landing <see cref="DiskFlushedBatch.FlushedUpTo"/> is on
    /// the medium. What a mirror set's primary asks of its copies.
    /// </summary>
    [AlwaysInterleave]
    Task<DiskFlushedBatch> FlushMarked();

    /// <summary>
    /// Compares every page slot of a mirrored disk's copies and mends them: the disk's own slot failing a check is
    /// rewritten from a copy that passes every check with the same page version, a copy failing one is rewritten from
    /// the disk (both counted as repaired), a copy behind is written from the disk (resynced). On a disk without
    /// mirrors, verifies every slot. Call it on the disk (copy 0).
    /// </summary>
    Task<ScrubResult> Scrub();

    /// <summary>Every repair this disk's mirror set made, in order: a history kept beside the image by the disk (copy 0) for every copy.</summary>
    Task<RepairRecord[]> GetRepairLog();

    /// <summary>Reads and verifies sectors; <see cref="StorageError.IntegrityError"/> when stored PI does not match.</summary>
    Task<DiskReadResult> Read(long lba, int sectors);

    Task<DiskStats> GetStats();

    /// <summary>
    /// Turns verification of written tuples on or off at run time (the volume's <see cref="VolumeConfig.VerifyOnDisk"/>
    /// is the initial setting). Off exists to measure what the checks cost; reads always verify.
    /// </summary>
    Task SetVerifyOnWrite(bool enabled);

    /// <summary>
    /// Fault injection on the medium: <see cref="FaultKind.MediaBitrot"/> flips a data bit of the sector at
    /// <paramref name="lba"/> now; <see cref="FaultKind.MisdirectedWrite"/>, <see cref="FaultKind.TornWrite"/> and
    /// <see cref="FaultKind.LostWrite"/> apply to the next <paramref name="count"/> accepted write commands that
    /// cover <paramref name="lba"/> (any command when <paramref name="lba"/> is -1).
    /// </summary>
    Task InjectFault(FaultKind kind, long lba, int count);

    /// <summary>The faults this disk applied since activation, in order.</summary>
    Task<FaultRecord[]> GetFaultLog();
}

/// <summary>A no-op grain call, for measuring the cluster's call ceiling.</summary>
public interface IPingGrain : IGrainWithIntegerKey
{
    Task<int> Ping(int value);
}
