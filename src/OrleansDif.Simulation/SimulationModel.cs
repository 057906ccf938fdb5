namespace OrleansDif.Simulation;

/// <summary>One seeded schedule: the volume it runs on and what may happen in it.</summary>
public sealed record SimulationOptions
{
    public int Seed { get; init; } = 1;
    public WritebackPolicy Policy { get; init; } = WritebackPolicy.Stable;
    /// <summary>Steps of the schedule before it drains (writes everything back, fsyncs and reads every page back).</summary>
    public int Steps { get; init; } = 300;
    public int Pages { get; init; } = 8;
    /// <summary>Guard tags computed at copy-in and cached (the volume setting).</summary>
    public bool TagsAtCopyIn { get; init; } = true;
    /// <summary>A store ends with the page write-protected again and tagged (the volume setting <c>storeTags</c>).</summary>
    public bool StoreTags { get; init; } = true;
    /// <summary>Each dirty period's first version durable before its writes are acknowledged (the volume setting <c>dirtyLog</c>).</summary>
    public bool DirtyLog { get; init; } = true;
    /// <summary>The volume's guard: the T10 16-bit one (8-byte tuples) or the NVMe 64-bit one (16-byte tuples).</summary>
    public GuardKind Guard { get; init; } = GuardKind.Crc16;
    /// <summary>Memory bit flips, transit bit flips, media bit rot, and lost, torn and misdirected writes.</summary>
    public bool Faults { get; init; } = true;
    /// <summary>Page activation loss, flusher loss, disk activation loss and power loss.</summary>
    public bool Crashes { get; init; } = true;
    /// <summary>Keep the last steps of a schedule that passed too (a failing one always keeps them).</summary>
    public bool KeepTrace { get; init; }

    public void Validate()
    {
        if (Steps is < 1 or > 1_000_000)
        {
            throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "steps must be 1..1000000");
        }
        if (Pages is < 1 or > 256)
        {
            throw new ArgumentOutOfRangeException(nameof(Pages), Pages, "pages must be 1..256");
        }
    }
}

/// <summary>The invariants checked after every step, against a model of what clients were told.</summary>
public enum Invariant
{
    /// <summary>A write an acknowledged fsync covered is not on the medium (the disk's flushed version is older).</summary>
    SyncedWriteLost,
    /// <summary>The disk accepted a command older than what it held, or than what a newer page activation claimed.</summary>
    StaleCommandLanded,
    /// <summary>A read or a load returned content that no acknowledged write made, and no check fired.</summary>
    WrongContentServed,
    /// <summary>Stable or bounce: the disk rejected a guard tag although no fault touched the page.</summary>
    GuardRejectionWithoutFault,
    /// <summary>An injected fault that a check must catch was accepted (a transit flip the disk took).</summary>
    FaultUndetected,
    /// <summary>A check fired (page poisoned, load failed) with no fault to explain it.</summary>
    FalseDetection,
    /// <summary>An fsync of a fault-free, crash-free drain did not make every page durable.</summary>
    DrainNotDurable,
    /// <summary>At the end, an injected fault with no outcome: neither detected, nor masked, nor counted in the known window.</summary>
    FaultUnaccounted,
    /// <summary>
    /// A page activation died holding an acknowledged write that is not on the disk, and the flusher judged it not
    /// lost: an fsync would pass the loss by.
    /// </summary>
    LossNotReported,
    /// <summary>
    /// A page activation died with every acknowledged write on the disk, and the flusher judged it lost although it
    /// could know better (the acknowledgement table was good, or the activation registered with this flusher).
    /// </summary>
    FalseLossReport,
}

/// <summary>An invariant that failed: at which step, and what was seen.</summary>
public sealed record Violation(int Step, Invariant Invariant, string Detail)
{
    public override string ToString() => $"step {Step}: {Invariant}: {Detail}";
}

/// <summary>Faults injected and what became of them.</summary>
public sealed class FaultCounts
{
    public int Injected { get; set; }
    /// <summary>Caught by a check: the page poisoned, the disk rejected the command, a load failed.</summary>
    public int Detected { get; set; }
    /// <summary>Overwritten whole (or the memory it hit went away) before anything read it.</summary>
    public int Masked { get; set; }
    /// <summary>
    /// Served or written back unchecked because it hit a sector without a cached tag (a store cleared them, or tags are
    /// not cached at copy-in): the known window, counted, not a violation.
    /// </summary>
    public int SilentInWindow { get; set; }
}

/// <summary>What one schedule did and found.</summary>
public sealed class SimulationResult
{
    public required SimulationOptions Options { get; init; }
    public List<Violation> Violations { get; } = [];
    /// <summary>A hash of every step taken and its outcome: equal for equal seeds (the schedule replays exactly).</summary>
    public ulong TraceHash { get; set; }
    /// <summary>The last steps (at most 400) before the end or the first violation: kept when it failed, or when asked.</summary>
    public List<string> Trace { get; } = [];
    public Dictionary<string, long> Counters { get; } = [];
    public Dictionary<string, FaultCounts> Faults { get; } = [];
    public bool Passed => Violations.Count == 0;

    public long Count(string name) => Counters.GetValueOrDefault(name);
}
