using System.Diagnostics.Metrics;

namespace OrleansDif.Grains;

/// <summary>System.Diagnostics.Metrics instruments of the storage path (meter "OrleansDif").</summary>
public static class DifMetrics
{
    public const string MeterName = "OrleansDif";

    private static readonly Meter s_meter = new(MeterName);

    public static readonly Counter<long> Writes = s_meter.CreateCounter<long>("orleansdif.page.writes", description: "write() and store calls applied");
    public static readonly Counter<long> Refusals = s_meter.CreateCounter<long>("orleansdif.page.refusals", description: "writes refused because the page was under writeback");
    public static readonly Histogram<double> StallMs = s_meter.CreateHistogram<double>("orleansdif.page.stall", "ms", "time a held write waited for writeback to end");
    public static readonly UpDownCounter<long> DirtyPages = s_meter.CreateUpDownCounter<long>("orleansdif.page.dirty", description: "pages dirty or under writeback");
    public static readonly Counter<long> EvictionWrites = s_meter.CreateCounter<long>("orleansdif.page.eviction_writes", description: "dirty pages written straight to disk as their activation ended");
    public static readonly Counter<long> LeaseExpiries = s_meter.CreateCounter<long>("orleansdif.page.lease_expiries", description: "writebacks that never ended");
    public static readonly Counter<long> WritebackPages = s_meter.CreateCounter<long>("orleansdif.writeback.pages", description: "pages written back");
    public static readonly Counter<long> TagsComputed = s_meter.CreateCounter<long>("orleansdif.writeback.tags_computed", description: "guard tags computed at writeback");
    public static readonly Counter<long> TagsReused = s_meter.CreateCounter<long>("orleansdif.writeback.tags_reused", description: "guard tags reused from copy-in");
    public static readonly Histogram<double> WritebackIoMs = s_meter.CreateHistogram<double>("orleansdif.writeback.io", "ms", "disk command latency seen by writeback");
    public static readonly Counter<long> DiskRejections = s_meter.CreateCounter<long>("orleansdif.disk.rejections", description: "disk commands rejected, by check");
    public static readonly Counter<long> DiskReadErrors = s_meter.CreateCounter<long>("orleansdif.disk.read_errors", description: "sectors whose PI failed on read, by check");
    public static readonly Counter<long> LostWrites = s_meter.CreateCounter<long>("orleansdif.page.lost_writes", description: "reads that found an older page version on disk than the last durable one");
    public static readonly Counter<long> LostPages = s_meter.CreateCounter<long>("orleansdif.page.lost_unsynced", description: "pages that came up with their write intent set (acknowledged writes lost with a silo)");
    public static readonly Counter<long> PoisonedPages = s_meter.CreateCounter<long>("orleansdif.page.poisoned", description: "pages whose memory no longer matched their cached guard tags");
    public static readonly Counter<long> FaultsInjected = s_meter.CreateCounter<long>("orleansdif.faults.injected", description: "faults injected, by kind");
    public static readonly Counter<long> StaleCommands = s_meter.CreateCounter<long>("orleansdif.disk.stale", description: "page commands refused because the disk holds a newer version of a page");
    public static readonly Counter<long> MetadataCommits = s_meter.CreateCounter<long>("orleansdif.metadata.commits", description: "synchronous commits of persistent grain state");
    public static readonly Counter<long> CorruptStateFiles = s_meter.CreateCounter<long>("orleansdif.state.corrupt", description: "grain state files found torn or garbage (moved aside, reported)");
    public static readonly Counter<long> DiskSectorsWritten = s_meter.CreateCounter<long>("orleansdif.disk.sectors_written");
}
