using System.CommandLine;
using OrleansDif.LoadGenerator;
using OrleansDif.Cluster;
using OrleansDif.Silo;
using Spectre.Console;

namespace OrleansDif.Cli;

/// <summary><c>orleansdif load</c>: drives a cluster, measures, and verifies every acknowledged byte.</summary>
internal static class LoadCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var config = SiloCommands.ConfigOption();
        var set = SiloCommands.SetOption();
        var local = new Option<bool>("--local") { Description = "Start the config's silos as child processes first, stop them at the end" };
        var policy = new Option<string?>("--policy") { Description = "stable, bounce or unstable (default: the config volume's)" };
        var pages = new Option<int>("--pages") { Description = "Pages of the volume the writers touch", DefaultValueFactory = _ => 256 };
        var writers = new Option<int>("--writers") { Description = "Concurrent writers", DefaultValueFactory = _ => 8 };
        var writeSize = new Option<string>("--write-size") { Description = "Bytes per write or store, MIN-MAX", DefaultValueFactory = _ => "512-4096" };
        var mix = new Option<string>("--mix") { Description = "Operation mix in percent", DefaultValueFactory = _ => "write=70,store=20,read=10" };
        var wait = new Option<bool>("--wait") { Description = "Hold writes during writeback (default: take the refusal and retry)" };
        var fsyncEvery = new Option<int>("--fsync-every") { Description = "Each writer fsyncs after every N operations (0: only at the end)" };
        var duration = new Option<string>("--duration") { Description = "How long, e.g. 20s, 2m", DefaultValueFactory = _ => "20s" };
        var seed = new Option<int>("--seed") { Description = "Seed of the workload", DefaultValueFactory = _ => 1 };
        var dataDir = new Option<string?>("--data-dir") { Description = "Data directory of the disk images (overrides the config)" };
        var workload = new Option<string>("--workload") { Description = "mixed or ping (no-op grain calls: the cluster's ceiling)", DefaultValueFactory = _ => "mixed" };
        workload.AcceptOnlyFromAmong("mixed", "ping");
        var json = new Option<string?>("--json") { Description = "Write the report as JSON to this path" };
        var chart = new Option<string?>("--chart") { Description = "Write throughput and p99 latency over time to this PNG" };
        var compare = new Option<bool>("--compare") { Description = "Run the same seeded workload under stable, bounce and unstable (with --inject: each with guard tags cached at copy-in and without)" };
        var inject = new Option<string?>("--inject") { Description = "Inject faults during the run: page-bitflip, transit-bitflip, media-bitrot, misdirected-write, torn-write, lost-write (comma-separated, or all); needs faultInjection: true" };
        var injectEvery = new Option<int>("--inject-every") { Description = "One fault every N acknowledged writes", DefaultValueFactory = _ => 100 };
        var noTagCache = new Option<bool>("--no-tag-cache") { Description = "Compute guard tags only at writeback (no cache at copy-in)" };
        var chaos = new Option<string?>("--chaos") { Description = "kill-silo: SIGKILL a silo and restart it, again and again (needs --local; silo 0 only with Redis membership); power-loss: SIGKILL every silo at once and restart them all" };
        var chaosEvery = new Option<string>("--chaos-every") { Description = "Time between kills (10s), or acknowledged writes between kills (500writes)", DefaultValueFactory = _ => "10s" };
        var rounds = new Option<int?>("--rounds") { Description = "Runs of each policy in rotating order; each reports its median round (3 with --compare, else 1)" };
        var warmup = new Option<string?>("--warmup") { Description = "Unmeasured load before the measured runs, on volumes of their own (default 12s with --compare, else 0s)" };
        var chaosKills = new Option<int>("--chaos-kills") { Description = "Run on past --duration until this many kills and restarts happened and writes were acknowledged after the last (0: kill until the duration ends)" };
        var command = new Command("load", "Drive the cluster with writers, then fsync and verify every acknowledged byte (exit 0 exact, 1 not, 2 bad usage)")
        {
            config, set, local, policy, pages, writers, writeSize, mix, wait, fsyncEvery, duration, seed, dataDir, workload, json, chart, compare,
            inject, injectEvery, noTagCache, chaos, chaosEvery, chaosKills, warmup, rounds,
        };
        command.SetAction(async (parse, ct) =>
        {
            LoadOptions options;
            ClusterConfig cluster;
            string[] setValues = parse.GetValue(set) ?? [];
            try
            {
                var (min, max) = LoadOptions.ParseSizeRange(parse.GetValue(writeSize)!);
                options = new LoadOptions
                {
                    ConfigPath = parse.GetValue(config)!,
                    Local = parse.GetValue(local),
                    Policy = parse.GetValue(policy) is string p ? LoadOptions.ParsePolicy(p) : null,
                    Pages = parse.GetValue(pages),
                    Writers = parse.GetValue(writers),
                    WriteSizeMin = min,
                    WriteSizeMax = max,
                    Mix = OperationMix.Parse(parse.GetValue(mix)!),
                    Wait = parse.GetValue(wait),
                    FsyncEvery = parse.GetValue(fsyncEvery),
                    Duration = LoadOptions.ParseDuration(parse.GetValue(duration)!),
                    Seed = parse.GetValue(seed),
                    DataDirectory = parse.GetValue(dataDir),
                    Workload = parse.GetValue(workload) == "ping" ? Workload.Ping : Workload.Mixed,
                    JsonPath = parse.GetValue(json),
                    ChartPath = parse.GetValue(chart),
                    Compare = parse.GetValue(compare),
                    Inject = parse.GetValue(inject) is string kinds ? LoadOptions.ParseInject(kinds) : [],
                    InjectEvery = parse.GetValue(injectEvery),
                    TagsAtCopyIn = parse.GetValue(noTagCache) ? false : null,
                    KillSilos = parse.GetValue(chaos) is string c && LoadOptions.ParseChaos(c) is ChaosKind.KillSilo or ChaosKind.PowerLoss,
                    PowerLoss = parse.GetValue(chaos) is string pl && LoadOptions.ParseChaos(pl) == ChaosKind.PowerLoss,
                    ChaosEvery = LoadOptions.ParseChaosEvery(parse.GetValue(chaosEvery)!).Period ?? TimeSpan.FromSeconds(10),
                    ChaosEveryWrites = LoadOptions.ParseChaosEvery(parse.GetValue(chaosEvery)!).Writes,
                    ChaosKills = parse.GetValue(chaosKills),
                    Rounds = parse.GetValue(rounds),
                    Warmup = parse.GetValue(warmup) is string wu ? (wu.Trim() is "0" or "0s" ? TimeSpan.Zero : LoadOptions.ParseDuration(wu)) : null,
                };
                if (options.KillSilos && options.FsyncEvery == 0)
                {
                    options = options with { FsyncEvery = 50 }; // synced and unsynced writes both, for the verification to tell apart
                }
                options.Validate();
                if (options.DataDirectory is not null)
                {
                    setValues = [.. setValues, "dataDirectory=" + Path.GetFullPath(options.DataDirectory)];
                }
                cluster = ClusterConfig.Load(options.ConfigPath, SiloCommands.Overrides(setValues));
                if (options.Inject.Count > 0 && !cluster.FaultInjection)
                {
                    throw new UsageException("--inject: fault injection is disabled in the cluster config (set faultInjection: true, or --set faultInjection=true)");
                }
            }
            catch (Exception e) when (e is UsageException or ConfigException)
            {
                await stderr.WriteLineAsync($"orleansdif load: {e.Message}");
                return CliApp.ExitUsage;
            }
            return await RunAsync(options, cluster, setValues, stdout, stderr, ct);
        });
        return command;
    }

    private static async Task<int> RunAsync(LoadOptions options, ClusterConfig cluster, string[] setValues,
        TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        IAnsiConsole console = CliApp.AnsiConsoleFor(stdout);
        try
        {
            await using ClusterSession session = await ClusterSession.OpenAsync(cluster, options.ConfigPath, setValues, options.Local, console, ct);
            ChaosMonkey? monkey = options.KillSilos
                ? new ChaosMonkey(session.Local!, cluster.Silos.Count, options.ChaosEvery, options.Seed, session.Log!, options.ChaosEveryWrites, options.ChaosKills,
                    options.PowerLoss ? ChaosKind.PowerLoss : ChaosKind.KillSilo)
                : null;
            var runner = new LoadRunner(session.Client, cluster, options, monkey);
            WritebackPolicy[] policies = options.Compare
                ? [WritebackPolicy.Stable, WritebackPolicy.Bounce, WritebackPolicy.Unstable]
                : [options.Policy ?? cluster.Volumes.FirstOrDefault()?.ToVolumeConfig().Policy ?? WritebackPolicy.Stable];
            // A detection matrix compares tag caching on and off too: what copy-in caching catches.
            bool?[] caching = options.Compare && options.Inject.Count > 0 && options.TagsAtCopyIn is null ? [true, false] : [null];
            if (options.EffectiveWarmup > TimeSpan.Zero && options.Workload == Workload.Mixed)
            {
                // Unmeasured: the first measured policy must not pay for the silos' JIT and cold connections.
                TimeSpan each = options.EffectiveWarmup / policies.Length;
                console.MarkupLine($"warm-up: {options.EffectiveWarmup.TotalSeconds:F0} s over {policies.Length} policies on volumes of their own, not measured");
                var warm = new LoadRunner(session.Client, cluster, options with { Duration = each, JsonPath = null, ChartPath = null }) { VolumeSuffix = "-warmup" };
                foreach (WritebackPolicy policy in policies)
                {
                    await warm.RunAsync(policy, ct);
                }
            }
            // Rounds in rotating order (round r starts with the r-th policy), so that no policy always runs first or
            // last on a machine whose speed drifts; each policy's report is its median round by ops/s.
            var rounds = new Dictionary<(WritebackPolicy, bool?), List<LoadReport>>();
            for (int round = 0; round < options.EffectiveRounds; round++)
            {
                foreach (WritebackPolicy policy in policies.Skip(round % policies.Length).Concat(policies.Take(round % policies.Length)))
                {
                    foreach (bool? tags in caching)
                    {
                        VolumeConfig volume = runner.VolumeFor(policy, tags);
                        string faults = options.Inject.Count == 0 ? "" : $", injecting {string.Join(",", options.Inject.Select(FaultKinds.Name))} every {options.InjectEvery} writes";
                        string of = options.EffectiveRounds > 1 ? $" (round {round + 1}/{options.EffectiveRounds})" : "";
                        console.MarkupLine($"[bold]{policy.ToString().ToLowerInvariant()}[/]{of}: {options.Workload.ToString().ToLowerInvariant()} workload, {options.Writers} writers, {options.Pages} pages of {Markup.Escape(volume.Id)}, {options.Duration.TotalSeconds:F0} s{faults}");
                        Task<LoadReport> run = runner.RunAsync(policy, ct, tags);
                        await ShowProgressAsync(console, runner, session.Client, volume, options, run);
                        if (!rounds.TryGetValue((policy, tags), out var list))
                        {
                            rounds[(policy, tags)] = list = [];
                        }
                        list.Add(await run);
                    }
                }
            }
            var reports = new List<LoadReport>();
            foreach (WritebackPolicy policy in policies)
            {
                foreach (bool? tags in caching)
                {
                    List<LoadReport> all = rounds[(policy, tags)];
                    LoadReport median = all.OrderBy(r => r.OpsPerSecond).ElementAt(all.Count / 2);
                    // A policy passes only if every round did; the median round stands for its figures.
                    LoadReport failed = all.FirstOrDefault(r => !r.Passed) ?? median;
                    reports.Add((failed.Passed ? median : failed) with { RoundsOpsPerSecond = all.Count > 1 ? [.. all.Select(r => r.OpsPerSecond)] : null });
                }
            }
            console.Write(Summary(reports));
            if (reports.FirstOrDefault(r => r.Chaos is not null)?.Chaos is ChaosReport chaosReport)
            {
                console.MarkupLine($"chaos: {chaosReport.Kills} kills{(chaosReport.PowerLosses > 0 ? $" ({chaosReport.PowerLosses} power losses, every silo at once)" : "")} ({Markup.Escape(string.Join(", ", chaosReport.Killed))}), {chaosReport.Restarts} restarts, "
                    + $"{chaosReport.ReactivatedPages} pages came back; acknowledged writes lost: synced {chaosReport.SyncedLost}, unsynced {chaosReport.UnsyncedLost}; "
                    + $"fsyncs reporting lost pages {chaosReport.FsyncLossReports} (false reports {chaosReport.FalseLossReports}), failed {chaosReport.FsyncFailures}; calls retried {chaosReport.RetriedCalls}");
                if (chaosReport.PowerLosses > 0 && chaosReport.FalseLossReports > 0 && cluster.Volumes.FirstOrDefault() is { DirtyLog: false })
                {
                    console.MarkupLine("  the volume keeps no dirty log (dirtyLog: false): after a power loss a page that may have lost writes is reported lost, "
                        + "so some reports are false; --set volumes:0:dirtyLog=true makes them exact");
                }
            }
            if (options.Inject.Count > 0)
            {
                console.Write(DetectionMatrix(reports));
            }
            foreach (LoadReport r in reports)
            {
                foreach (string error in r.Errors.Take(10))
                {
                    console.MarkupLine($"[red]{r.Policy}: {Markup.Escape(error)}[/]");
                }
            }
            if (options.JsonPath is not null)
            {
                await File.WriteAllTextAsync(options.JsonPath, LoadReport.ToJson(reports), CancellationToken.None);
                console.MarkupLine($"report: {Markup.Escape(options.JsonPath)}");
            }
            if (options.ChartPath is not null)
            {
                ChartWriter.Write(options.ChartPath, reports);
                console.MarkupLine($"chart: {Markup.Escape(options.ChartPath)}");
            }
            bool passed = reports.All(r => r.Passed);
            console.MarkupLine(passed ? "[green]PASSED[/]: read-back exact, no guard rejections where the policy promises none"
                                      : "[red]FAILED[/]: see the verify and rejection columns");
            return passed ? CliApp.ExitOk : CliApp.ExitFailed;
        }
        catch (Exception e) when (e is ConnectionException or ConfigException or TimeoutException or InvalidOperationException or UsageException or StorageException or OrleansException)
        {
            await stderr.WriteLineAsync($"orleansdif load: {e.Message}");
            return e is UsageException or ConfigException ? CliApp.ExitUsage : CliApp.ExitFailed;
        }
    }

    internal static async Task ShowProgressAsync(IAnsiConsole console, LoadRunner runner, IClusterClient client, VolumeConfig volume,
        LoadOptions options, Task run)
    {
        IWritebackGrain flusher = client.Flusher(volume.Id);
        async Task<string> Line()
        {
            LiveCounters c = runner.Live;
            double elapsed = runner.Clock.Elapsed.TotalSeconds;
            string wb = "";
            if (options.Workload == Workload.Mixed)
            {
                try
                {
                    WritebackStats s = await flusher.GetStats();
                    wb = $" | dirty {s.DirtyPages} | disk rejections guard {s.RejectedGuard} app {s.RejectedApp} ref {s.RejectedRef}";
                }
                catch (Exception)
                {
                    wb = " | (flusher not reachable)";
                }
            }
            return $"{elapsed,5:F1}s / {options.Duration.TotalSeconds:F0}s | {c.Ops / Math.Max(elapsed, 0.001),9:F0} ops/s | refused {c.Refused} | errors {c.Errors}{wb}";
        }
        if (console.Profile.Capabilities.Interactive && !Console.IsOutputRedirected)
        {
            await console.Status().StartAsync("running", async ctx =>
            {
                while (!run.IsCompleted)
                {
                    ctx.Status(Markup.Escape(await Line()));
                    await Task.WhenAny(run, Task.Delay(1000));
                }
            });
        }
        else
        {
            while (!run.IsCompleted)
            {
                await Task.WhenAny(run, Task.Delay(5000));
                if (!run.IsCompleted)
                {
                    console.WriteLine(await Line());
                }
            }
        }
    }

    private static string Column(LoadReport r) => r.TagsAtCopyIn ? r.Policy : r.Policy + " (no tag cache)";

    /// <summary>Fault kind × run: detected / applied, and how many went silent (the read-back found them, no check did).</summary>
    internal static Table DetectionMatrix(IReadOnlyList<LoadReport> reports)
    {
        var table = new Table().Title("faults detected / applied (silent: found only by the read-back)").AddColumn("fault");
        foreach (LoadReport r in reports)
        {
            table.AddColumn(new TableColumn(Markup.Escape(Column(r))).RightAligned());
        }
        IEnumerable<string> kinds = reports.SelectMany(r => r.Faults?.Keys ?? Enumerable.Empty<string>()).Distinct();
        foreach (string kind in kinds)
        {
            table.AddRow([kind, .. reports.Select(r => r.Faults?.GetValueOrDefault(kind) is FaultStats f
                ? (f.Silent > 0 ? $"{f.Detected}/{f.Injected} [red]silent {f.Silent}[/]" : $"{f.Detected}/{f.Injected}")
                  + (f.Repaired > 0 ? $" repaired {f.Repaired}" : "")
                  + (f.Masked > 0 ? $" masked {f.Masked}" : "") + (f.Pending > 0 ? $" pending {f.Pending}" : "")
                : "-")]);
        }
        return table;
    }

    internal static Table Summary(IReadOnlyList<LoadReport> reports)
    {
        var table = new Table().AddColumn("");
        foreach (LoadReport r in reports)
        {
            table.AddColumn(new TableColumn(Markup.Escape(Column(r))).RightAligned());
        }
        void Row(string name, Func<LoadReport, string> value) => table.AddRow([name, .. reports.Select(value)]);
        Row("silos", r => r.Silos.ToString());
        Row("ops/s", r => r.OpsPerSecond.ToString("F0"));
        Row("MB/s written", r => r.MbPerSecond.ToString("F2"));
        Row("writes / stores / reads", r => $"{r.Ops.Write} / {r.Ops.Store} / {r.Ops.Read}");
        Row("pings", r => r.Ops.Ping.ToString());
        Row("fsyncs", r => r.Ops.Fsync.ToString());
        Row("refused (EAGAIN)", r => r.Ops.Refused.ToString());
        Row("write p50 / p99 ms", r => $"{r.LatencyMs.Write.P50:F2} / {r.LatencyMs.Write.P99:F2}");
        Row("stalls: count, p99 / max ms", r => $"{r.StallMs.Count}, {r.StallMs.P99:F1} / {r.StallMs.Max:F1}");
        Row("pages written back", r => r.Writeback.Pages.ToString());
        Row("disk commands", r => r.Writeback.Commands.ToString());
        Row("guard tags reused / computed", r => $"{r.Writeback.CrcReused} / {r.Writeback.CrcComputed}");
        Row("bounce copies", r => r.Writeback.BounceCopies.ToString());
        Row("disk rejections guard/app/ref", r => $"{r.Disk.Rejected.Guard}/{r.Disk.Rejected.App}/{r.Disk.Rejected.Ref}");
        Row("writeback retries", r => r.Writeback.Retries.ToString());
        Row("metadata commits / disk flushes", r => r.Durability is { } d ? $"{d.MetadataCommits} / {d.DiskFlushes}" : "-");
        Row("  per 1000 writes", r => r.Durability is { } d ? $"{d.CommitsPer1000Writes:F2} / {d.FlushesPer1000Writes:F2}" : "-");
        Row("stale commands / lease expiries", r => r.Durability is { } d ? $"{d.StaleCommands} / {d.LeaseExpiries}" : "-");
        Row("verify: pages / mismatched / lost", r => $"{r.Verify.Pages} / {r.Verify.Mismatched} / {r.Verify.Lost}");
        Row("integrity errors reported", r => r.Verify.IntegrityErrors.ToString());
        if (reports.Any(r => r.Mirror is not null))
        {
            Row("mirror: repaired / resynced", r => r.Mirror is { } m ? $"{m.Repaired} / {m.Resynced}" : "-");
            Row("  unrepairable / out of sync", r => r.Mirror is { } m ? $"{m.Unrepairable} / {m.OutOfSync}" : "-");
            Row("  scrub: slots / repaired", r => r.Mirror is { } m ? $"{m.ScrubbedSlots} / {m.ScrubRepaired}" : "-");
        }
        Row("errors", r => r.Errors.Count.ToString());
        Row("result", r => r.Passed ? "[green]pass[/]" : "[red]FAIL[/]");
        return table;
    }
}
