using System.Globalization;

namespace OrleansDif.LoadGenerator;

public enum Workload
{
    /// <summary>Writes, stores through writable mappings, and reads, in the proportions of the mix.</summary>
    Mixed,
    /// <summary>No-op grain calls: the cluster's ceiling.</summary>
    Ping,
}

/// <summary>Bad load-generator options; the CLI exits 2 with this message.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>Proportions of the mixed workload, in percent.</summary>
public sealed record OperationMix(int Write, int Store, int Read)
{
    public static readonly OperationMix Default = new(70, 20, 10);

    /// <summary>Parses "write=70,store=20,read=10"; missing kinds are 0; the parts must add up to 100.</summary>
    public static OperationMix Parse(string text)
    {
        int write = 0, store = 0, read = 0;
        var seen = new HashSet<string>();
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string[] kv = part.Split('=', StringSplitOptions.TrimEntries);
            if (kv.Length != 2 || !int.TryParse(kv[1], NumberStyles.None, CultureInfo.InvariantCulture, out int value))
            {
                throw new UsageException($"--mix: '{part}' is not kind=percent");
            }
            if (!seen.Add(kv[0]))
            {
                throw new UsageException($"--mix: '{kv[0]}' given twice");
            }
            switch (kv[0])
            {
                case "write": write = value; break;
                case "store": store = value; break;
                case "read": read = value; break;
                default: throw new UsageException($"--mix: unknown kind '{kv[0]}' (write, store, read)");
            }
        }
        if (write + store + read != 100)
        {
            throw new UsageException($"--mix: parts add up to {write + store + read}, not 100");
        }
        return new OperationMix(write, store, read);
    }

    public override string ToString() => $"write={Write},store={Store},read={Read}";
}

/// <summary>Everything a load run needs to know.</summary>
public sealed record LoadOptions
{
    public string ConfigPath { get; init; } = "cluster-config/local.json";
    public bool Local { get; init; }
    /// <summary>Null: the policy of the config's volume.</summary>
    public WritebackPolicy? Policy { get; init; }
    public int Pages { get; init; } = 256;
    public int Writers { get; init; } = 8;
    public int WriteSizeMin { get; init; } = 512;
    public int WriteSizeMax { get; init; } = 4096;
    public OperationMix Mix { get; init; } = OperationMix.Default;
    /// <summary>Hold writes during writeback (true) or take the refusal and retry (false).</summary>
    public bool Wait { get; init; }
    /// <summary>Each writer fsyncs the volume after every N of its operations; 0: never (only at the end).</summary>
    public int FsyncEvery { get; init; }
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(20);
    /// <summary>
    /// Unmeasured load before the measured runs, on volumes of its own, split over the policies to run: the silos'
    /// JIT tiers up (tiered compilation and dynamic PGO need seconds of load on two cores) and connections open, so
    /// that the first measured policy does not pay for it. Null: 12 s with --compare, none otherwise.
    /// </summary>
    public TimeSpan? Warmup { get; init; }

    /// <summary>Runs of each policy, in rotating order; each policy reports its median round. Null: 3 with --compare, else 1.</summary>
    public int? Rounds { get; init; }

    public int EffectiveRounds => Rounds ?? (Compare && Inject.Count == 0 && !KillSilos ? 3 : 1);

    public TimeSpan EffectiveWarmup => Warmup ?? (Compare && Inject.Count == 0 && !KillSilos ? TimeSpan.FromSeconds(12) : TimeSpan.Zero);
    public int Seed { get; init; } = 1;
    public string? DataDirectory { get; init; }
    public Workload Workload { get; init; } = Workload.Mixed;
    public string? JsonPath { get; init; }
    public string? ChartPath { get; init; }
    public bool Compare { get; init; }
    /// <summary>Disks verify every tuple of a write (the default), or not (for measuring the cost of the checks).</summary>
    public bool VerifyOnDisk { get; init; } = true;
    /// <summary>Faults to inject during the run (needs faultInjection: true in the cluster config).</summary>
    public IReadOnlyList<FaultKind> Inject { get; init; } = [];
    /// <summary>One fault every N acknowledged writes (over all writers).</summary>
    public int InjectEvery { get; init; } = 100;
    /// <summary>Null: the config volume's setting; false: guard tags computed only at writeback (no cache).</summary>
    public bool? TagsAtCopyIn { get; init; }
    /// <summary>Kill a silo (SIGKILL) and restart it every <see cref="ChaosEvery"/> during the run (needs a local cluster).</summary>
    public bool KillSilos { get; init; }
    /// <summary>With <see cref="KillSilos"/>: each kill is a power loss, every silo SIGKILLed at once, then all restarted.</summary>
    public bool PowerLoss { get; init; }
    public TimeSpan ChaosEvery { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>
    /// When set, kills are counted in acknowledged writes instead of time: one kill after every N writes
    /// acknowledged since the previous restart (an event, not a clock: the same run on a slow machine kills as often).
    /// </summary>
    public int? ChaosEveryWrites { get; init; }
    /// <summary>When above 0: the run goes on past its duration until this many kills and restarts happened and writes were acknowledged after the last.</summary>
    public int ChaosKills { get; init; }

    /// <summary>Parses --chaos-every: a duration ("10s") or a count of acknowledged writes ("500writes").</summary>
    public static (TimeSpan? Period, int? Writes) ParseChaosEvery(string text)
    {
        string t = text.Trim();
        if (t.EndsWith("writes", StringComparison.Ordinal))
        {
            return int.TryParse(t.AsSpan(0, t.Length - "writes".Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) && n is >= 1 and <= 100_000_000
                ? (null, n)
                : throw new UsageException($"--chaos-every '{text}': a count of writes is 1writes..100000000writes");
        }
        return (ParseDuration(t), null);
    }

    /// <summary>Parses the --chaos value: "kill-silo" (one silo at a time) or "power-loss" (every silo at once).</summary>
    public static ChaosKind ParseChaos(string text) => text.Trim() switch
    {
        "kill-silo" => ChaosKind.KillSilo,
        "power-loss" => ChaosKind.PowerLoss,
        _ => throw new UsageException($"--chaos: unknown kind '{text}' (kill-silo, power-loss)"),
    };

    /// <summary>Parses "page-bitflip,lost-write"; "all" is every kind.</summary>
    public static IReadOnlyList<FaultKind> ParseInject(string text)
    {
        if (text.Trim().Equals("all", StringComparison.OrdinalIgnoreCase))
        {
            return Enum.GetValues<FaultKind>();
        }
        var kinds = new List<FaultKind>();
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            try
            {
                FaultKind kind = FaultKinds.Parse(part);
                if (!kinds.Contains(kind))
                {
                    kinds.Add(kind);
                }
            }
            catch (StorageException e)
            {
                throw new UsageException($"--inject: {e.Message[(e.Message.IndexOf(':') + 2)..]}");
            }
        }
        if (kinds.Count == 0)
        {
            throw new UsageException("--inject: no fault kind given");
        }
        return kinds;
    }

    public void Validate()
    {
        if (Pages is < 1 or > 1 << 20)
        {
            throw new UsageException($"--pages {Pages} must be 1..1048576");
        }
        if (Writers is < 1 or > 1024)
        {
            throw new UsageException($"--writers {Writers} must be 1..1024");
        }
        if (WriteSizeMin < 1 || WriteSizeMax > VolumeConfig.PageSize || WriteSizeMin > WriteSizeMax)
        {
            throw new UsageException($"--write-size {WriteSizeMin}-{WriteSizeMax} must be within 1-{VolumeConfig.PageSize}, min <= max");
        }
        if (InjectEvery is < 1 or > 1_000_000)
        {
            throw new UsageException($"--inject-every {InjectEvery} must be 1..1000000");
        }
        if (Inject.Count > 0 && Workload == Workload.Ping)
        {
            throw new UsageException("--inject needs the mixed workload");
        }
        if (KillSilos && !Local)
        {
            throw new UsageException("--chaos kill-silo needs --local: it kills and restarts the silo processes it started");
        }
        if (KillSilos && (Workload == Workload.Ping || Compare || Inject.Any(k => k != FaultKind.MediaBitrot)))
        {
            // Media bit rot hits pages at rest that were made durable before the run: what a kill loses is not theirs.
            throw new UsageException("--chaos runs with the mixed workload only, without --compare, and with no --inject but media-bitrot");
        }
        if (ChaosKills is < 0 or > 1000)
        {
            throw new UsageException($"--chaos-kills {ChaosKills} must be 0..1000");
        }
        if (ChaosKills > 0 && !KillSilos)
        {
            throw new UsageException("--chaos-kills needs --chaos kill-silo");
        }
        if (ChaosEveryWrites is null && (ChaosEvery < TimeSpan.FromSeconds(1) || ChaosEvery > TimeSpan.FromHours(1)))
        {
            throw new UsageException($"--chaos-every {ChaosEvery} must be 1s..1h");
        }
        if (FsyncEvery < 0)
        {
            throw new UsageException($"--fsync-every {FsyncEvery} must not be negative");
        }
        if (Rounds is int r && r is < 1 or > 100)
        {
            throw new UsageException($"--rounds {Rounds} must be 1..100");
        }
        if (Rounds > 1 && (KillSilos || Inject.Count > 0))
        {
            throw new UsageException("--rounds runs the plain workload: not with --chaos or --inject");
        }
        if (Warmup is TimeSpan w && (w < TimeSpan.Zero || w > TimeSpan.FromHours(1)))
        {
            throw new UsageException($"--warmup {w} must be 0s..1h");
        }
        if (Duration <= TimeSpan.Zero || Duration > TimeSpan.FromHours(24))
        {
            throw new UsageException($"--duration {Duration} must be more than 0 and at most 24h");
        }
    }

    /// <summary>Parses "20s", "2m", "500ms", "1h" or a plain number of seconds.</summary>
    public static TimeSpan ParseDuration(string text)
    {
        text = text.Trim().ToLowerInvariant();
        (string number, double scale) = text switch
        {
            _ when text.EndsWith("ms", StringComparison.Ordinal) => (text[..^2], 0.001),
            _ when text.EndsWith('s') => (text[..^1], 1.0),
            _ when text.EndsWith('m') => (text[..^1], 60.0),
            _ when text.EndsWith('h') => (text[..^1], 3600.0),
            _ => (text, 1.0),
        };
        if (!double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double value) || value <= 0)
        {
            throw new UsageException($"--duration: '{text}' is not a duration such as 20s, 2m or 500ms");
        }
        return TimeSpan.FromSeconds(value * scale);
    }

    /// <summary>Parses "MIN-MAX" or a single size.</summary>
    public static (int Min, int Max) ParseSizeRange(string text)
    {
        string[] parts = text.Split('-', StringSplitOptions.TrimEntries);
        if (parts.Length is < 1 or > 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int min)
            || !int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out int max))
        {
            throw new UsageException($"--write-size: '{text}' is not MIN-MAX in bytes");
        }
        return (min, max);
    }

    public static WritebackPolicy ParsePolicy(string text)
    {
        try
        {
            return VolumeConfig.ParsePolicy(text);
        }
        catch (StorageException)
        {
            throw new UsageException($"--policy: unknown policy '{text}' (stable, bounce or unstable)");
        }
    }
}

/// <summary>What <c>--chaos</c> does each time it fires.</summary>
public enum ChaosKind
{
    /// <summary>SIGKILL one silo and restart it.</summary>
    KillSilo,
    /// <summary>SIGKILL every silo at once (the power fails), then restart them all: disks keep only what was flushed.</summary>
    PowerLoss,
}
