using System.Text.Json;
using System.Text.Json.Serialization;

namespace OrleansDif.LoadGenerator;

public sealed record Percentiles(
    [property: JsonPropertyName("p50")] double P50,
    [property: JsonPropertyName("p99")] double P99,
    [property: JsonPropertyName("p999")] double P999,
    [property: JsonPropertyName("max")] double Max);

public sealed record StallSummary(
    [property: JsonPropertyName("p50")] double P50,
    [property: JsonPropertyName("p99")] double P99,
    [property: JsonPropertyName("max")] double Max,
    [property: JsonPropertyName("count")] long Count);

public sealed record OpCounts(
    [property: JsonPropertyName("write")] long Write,
    [property: JsonPropertyName("store")] long Store,
    [property: JsonPropertyName("read")] long Read,
    [property: JsonPropertyName("fsync")] long Fsync,
    [property: JsonPropertyName("refused")] long Refused,
    [property: JsonPropertyName("ping")] long Ping,
    [property: JsonPropertyName("faults")] long Faults);

public sealed record LatencyReport(
    [property: JsonPropertyName("write")] Percentiles Write,
    [property: JsonPropertyName("store")] Percentiles Store,
    [property: JsonPropertyName("read")] Percentiles Read,
    [property: JsonPropertyName("fsync")] Percentiles Fsync,
    [property: JsonPropertyName("ping")] Percentiles Ping);

public sealed record IoLatency(
    [property: JsonPropertyName("p50")] double P50,
    [property: JsonPropertyName("p99")] double P99);

public sealed record WritebackReport(
    [property: JsonPropertyName("pages")] long Pages,
    [property: JsonPropertyName("commands")] long Commands,
    [property: JsonPropertyName("crcComputed")] long CrcComputed,
    [property: JsonPropertyName("crcReused")] long CrcReused,
    [property: JsonPropertyName("bounceCopies")] long BounceCopies,
    [property: JsonPropertyName("retries")] long Retries,
    [property: JsonPropertyName("throttled")] long Throttled,
    [property: JsonPropertyName("ioLatencyMs")] IoLatency IoLatencyMs);

public sealed record Rejections(
    [property: JsonPropertyName("guard")] long Guard,
    [property: JsonPropertyName("app")] long App,
    [property: JsonPropertyName("ref")] long Ref);

public sealed record DiskReport(
    [property: JsonPropertyName("sectorsWritten")] long SectorsWritten,
    [property: JsonPropertyName("rejected")] Rejections Rejected,
    [property: JsonPropertyName("verifyOnWrite")] bool VerifyOnWrite,
    [property: JsonPropertyName("verifyMs")] double VerifyMs);

/// <summary>
/// What durability cost in the run: synchronous metadata commits (page write intents, disk epoch reservations), disk
/// FLUSH commands that did I/O (coalesced ones count once), both per 1000 acknowledged writes and stores; page
/// commands the disks refused as stale (fencing), and writebacks that ended after their lease expired.
/// </summary>
public sealed record DurabilityReport(
    [property: JsonPropertyName("metadataCommits")] long MetadataCommits,
    [property: JsonPropertyName("diskFlushes")] long DiskFlushes,
    [property: JsonPropertyName("commitsPer1000Writes")] double CommitsPer1000Writes,
    [property: JsonPropertyName("flushesPer1000Writes")] double FlushesPer1000Writes,
    [property: JsonPropertyName("staleCommands")] long StaleCommands,
    [property: JsonPropertyName("leaseExpiries")] long LeaseExpiries);

/// <summary>
/// A mirrored volume (<c>mirrors</c> copies of each disk) after its run: page slots rewritten from a good copy because
/// a check failed on one (during the run, by reads, and by the final scrub), slots written to a copy that was behind
/// (resync), slots that failed on every copy that could stand in, slots still out of sync, and what the final scrub
/// compared.
/// </summary>
public sealed record MirrorReport(
    [property: JsonPropertyName("copies")] int Copies,
    [property: JsonPropertyName("repaired")] long Repaired,
    [property: JsonPropertyName("resynced")] long Resynced,
    [property: JsonPropertyName("unrepairable")] long Unrepairable,
    [property: JsonPropertyName("outOfSync")] int OutOfSync,
    [property: JsonPropertyName("scrubbedSlots")] long ScrubbedSlots,
    [property: JsonPropertyName("scrubRepaired")] long ScrubRepaired);

public sealed record VerifyReport(
    [property: JsonPropertyName("pages")] int Pages,
    [property: JsonPropertyName("mismatched")] int Mismatched,
    [property: JsonPropertyName("lost")] int Lost,
    [property: JsonPropertyName("acknowledgedWrites")] int AcknowledgedWrites,
    [property: JsonPropertyName("integrityErrors")] int IntegrityErrors = 0);

/// <summary>
/// What killing silos did: kills and restarts, acknowledged writes lost (synced: covered by an acknowledged fsync,
/// must be 0; unsynced: allowed, as after a kernel crash), fsyncs that reported lost pages, calls retried.
/// </summary>
public sealed record ChaosReport(
    [property: JsonPropertyName("kills")] int Kills,
    [property: JsonPropertyName("restarts")] int Restarts,
    [property: JsonPropertyName("syncedLost")] long SyncedLost,
    [property: JsonPropertyName("unsyncedLost")] long UnsyncedLost,
    [property: JsonPropertyName("killed")] IReadOnlyList<string> Killed,
    [property: JsonPropertyName("reactivatedPages")] long ReactivatedPages,
    [property: JsonPropertyName("fsyncLossReports")] long FsyncLossReports,
    [property: JsonPropertyName("fsyncFailures")] long FsyncFailures,
    [property: JsonPropertyName("retriedCalls")] long RetriedCalls,
    [property: JsonPropertyName("writesAfterLastRestart")] long WritesAfterLastRestart,
    [property: JsonPropertyName("kind")] string Kind = "kill-silo",
    [property: JsonPropertyName("powerLosses")] int PowerLosses = 0,
    [property: JsonPropertyName("falseLossReports")] long FalseLossReports = 0,
    [property: JsonPropertyName("falseLossDetails")] IReadOnlyList<string>? FalseLossDetails = null);

public sealed record TimelinePoint(
    [property: JsonPropertyName("second")] int Second,
    [property: JsonPropertyName("ops")] long Ops,
    [property: JsonPropertyName("p99Ms")] double P99Ms);

/// <summary>The load generator's JSON report (keys fixed by the product's contract; more may be added, none renamed).</summary>
public sealed record LoadReport
{
    [JsonPropertyName("policy")] public required string Policy { get; init; }
    [JsonPropertyName("workload")] public required string Workload { get; init; }
    [JsonPropertyName("volume")] public required string Volume { get; init; }
    [JsonPropertyName("silos")] public required int Silos { get; init; }
    [JsonPropertyName("writers")] public required int Writers { get; init; }
    [JsonPropertyName("seed")] public required int Seed { get; init; }
    [JsonPropertyName("wait")] public required bool Wait { get; init; }
    [JsonPropertyName("durationSeconds")] public required double DurationSeconds { get; init; }
    [JsonPropertyName("ops")] public required OpCounts Ops { get; init; }
    [JsonPropertyName("opsPerSecond")] public required double OpsPerSecond { get; init; }
    [JsonPropertyName("mbPerSecond")] public required double MbPerSecond { get; init; }
    [JsonPropertyName("latencyMs")] public required LatencyReport LatencyMs { get; init; }
    [JsonPropertyName("stallMs")] public required StallSummary StallMs { get; init; }
    [JsonPropertyName("writeback")] public required WritebackReport Writeback { get; init; }
    [JsonPropertyName("disk")] public required DiskReport Disk { get; init; }
    [JsonPropertyName("durability")] public DurabilityReport? Durability { get; init; }
    /// <summary>With --rounds: ops/s of every round, in run order; the report's other figures are the median round's.</summary>
    [JsonPropertyName("roundsOpsPerSecond")] public IReadOnlyList<double>? RoundsOpsPerSecond { get; init; }
    [JsonPropertyName("verify")] public required VerifyReport Verify { get; init; }
    [JsonPropertyName("images")] public required IReadOnlyList<string> Images { get; init; }
    [JsonPropertyName("errors")] public required IReadOnlyList<string> Errors { get; init; }
    [JsonPropertyName("timeline")] public required IReadOnlyList<TimelinePoint> Timeline { get; init; }
    [JsonPropertyName("tagsAtCopyIn")] public bool TagsAtCopyIn { get; init; } = true;
    [JsonPropertyName("versionTags")] public bool VersionTags { get; init; } = true;

    /// <summary>
    /// Per injected fault kind: applied, detected by a check, silent (the read-back found it, no check did),
    /// masked (overwritten before it mattered), pending (never applied). Null when nothing was injected.
    /// </summary>
    [JsonPropertyName("faults")] public IReadOnlyDictionary<string, FaultStats>? Faults { get; init; }

    /// <summary>A mirrored volume's copies after the run and a scrub of every disk; null without mirrors.</summary>
    [JsonPropertyName("mirror")] public MirrorReport? Mirror { get; init; }

    /// <summary>Silo kills during the run (<c>--chaos kill-silo</c>); null when none were asked for.</summary>
    [JsonPropertyName("chaos")] public ChaosReport? Chaos { get; init; }

    /// <summary>
    /// The run passed: no errors, the read-back was exact, and for stable and bounce no guard rejections
    /// (unstable is expected to show them: it is the bug). With faults injected, the differences and reports on
    /// the pages the faults touched belong to <see cref="Faults"/>; everything else must still be exact.
    /// </summary>
    [JsonPropertyName("passed")]
    public bool Passed => Errors.Count == 0 && Verify.Mismatched == 0 && Verify.Lost == 0 && (Chaos?.SyncedLost ?? 0) == 0
        && (Policy == "unstable" || Workload == "ping" || Faults is not null || Disk.Rejected.Guard == 0);

    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true };

    public static string ToJson(IReadOnlyList<LoadReport> reports) =>
        reports.Count == 1 ? JsonSerializer.Serialize(reports[0], s_json) : JsonSerializer.Serialize(reports, s_json);
}
