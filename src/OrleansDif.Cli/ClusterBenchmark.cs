using System.CommandLine;
using System.Text.Json;
using OrleansDif.LoadGenerator;
using OrleansDif.Cluster;
using OrleansDif.Silo;
using Spectre.Console;

namespace OrleansDif.Cli;

/// <summary>
/// <c>orleansdif bench cluster</c>: in one invocation on one cluster, the ceiling of no-op grain calls, stable
/// 4 KiB writes, and the same writes with the disks' PI verification off; prints the ratios.
/// </summary>
internal static class ClusterBenchmark
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var config = SiloCommands.ConfigOption();
        var set = SiloCommands.SetOption();
        var local = new Option<bool>("--local") { Description = "Start the config's silos as child processes first" };
        var duration = new Option<string>("--duration") { Description = "Length of each run", DefaultValueFactory = _ => "5s" };
        var rounds = new Option<int>("--rounds") { Description = "Rounds of the three runs, order rotated each round; medians reported", DefaultValueFactory = _ => 3 };
        var writers = new Option<int>("--writers") { Description = "Concurrent callers", DefaultValueFactory = _ => 32 };
        var pages = new Option<int>("--pages") { Description = "Pages (and ping grains) the callers spread over", DefaultValueFactory = _ => 256 };
        var json = new Option<string?>("--json") { Description = "Write the three reports and the ratios as JSON to this path" };
        var command = new Command("cluster", "Grain-call ceiling vs stable 4 KiB writes vs writes without disk PI checks, one cluster, one run")
        {
            config, set, local, duration, rounds, writers, pages, json,
        };
        command.SetAction(async (parse, ct) =>
        {
            IAnsiConsole console = CliApp.AnsiConsoleFor(stdout);
            string[] setValues = parse.GetValue(set) ?? [];
            LoadOptions baseOptions;
            ClusterConfig cluster;
            try
            {
                baseOptions = new LoadOptions
                {
                    ConfigPath = parse.GetValue(config)!,
                    Duration = LoadOptions.ParseDuration(parse.GetValue(duration)!),
                    Writers = parse.GetValue(writers),
                    Pages = parse.GetValue(pages),
                    Mix = new OperationMix(100, 0, 0),
                    WriteSizeMin = VolumeConfig.PageSize,
                    WriteSizeMax = VolumeConfig.PageSize,
                    Wait = true,
                };
                baseOptions.Validate();
                if (parse.GetValue(rounds) is < 1 or > 100)
                {
                    throw new UsageException("--rounds must be 1..100");
                }
                cluster = ClusterConfig.Load(baseOptions.ConfigPath, SiloCommands.Overrides(setValues));
            }
            catch (Exception e) when (e is UsageException or ConfigException)
            {
                await stderr.WriteLineAsync($"orleansdif bench cluster: {e.Message}");
                return CliApp.ExitUsage;
            }
            try
            {
                await using ClusterSession session = await ClusterSession.OpenAsync(cluster, baseOptions.ConfigPath, setValues, parse.GetValue(local), console, ct);
                var runs = new (string Name, LoadOptions Options)[]
                {
                    ("ping", baseOptions with { Workload = Workload.Ping }),
                    ("stable 4 KiB writes", baseOptions),
                    ("stable 4 KiB writes, disk PI checks off", baseOptions with { VerifyOnDisk = false }),
                };
                int roundCount = parse.GetValue(rounds);
                var all = runs.Select(_ => new List<LoadReport>()).ToArray();
                for (int round = 0; round < roundCount; round++)
                {
                    for (int k = 0; k < runs.Length; k++)
                    {
                        int i = (k + round) % runs.Length; // rotate the order: no run always goes first or last
                        var (name, options) = runs[i];
                        console.MarkupLine($"round {round + 1}/{roundCount} [bold]{name}[/]: {options.Writers} callers, {options.Duration.TotalSeconds:F0} s");
                        var runner = new LoadRunner(session.Client, cluster, options);
                        VolumeConfig volume = runner.VolumeFor(WritebackPolicy.Stable);
                        Task<LoadReport> run = runner.RunAsync(WritebackPolicy.Stable, ct);
                        await LoadCommand.ShowProgressAsync(console, runner, session.Client, volume, options, run);
                        all[i].Add(await run);
                    }
                }
                // The round with the median throughput stands for each run.
                var reports = all.Select(list => list.OrderBy(r => r.OpsPerSecond).ElementAt(list.Count / 2)).ToList();
                double writeVsPing = reports[1].OpsPerSecond / reports[0].OpsPerSecond;
                double checksOnVsOff = reports[1].OpsPerSecond / reports[2].OpsPerSecond;
                var table = new Table().AddColumns("run", "ops/s (median)", "all rounds", "p50 ms", "p99 ms", "verify");
                for (int i = 0; i < runs.Length; i++)
                {
                    LoadReport r = reports[i];
                    Percentiles lat = i == 0 ? r.LatencyMs.Ping : r.LatencyMs.Write;
                    table.AddRow(runs[i].Name, r.OpsPerSecond.ToString("F0"), string.Join(" ", all[i].Select(x => x.OpsPerSecond.ToString("F0"))),
                        lat.P50.ToString("F2"), lat.P99.ToString("F2"),
                        i == 0 ? "-" : $"{all[i].Sum(x => x.Verify.Pages)} pages, {all[i].Sum(x => x.Verify.Mismatched)} mismatched, {all[i].Sum(x => x.Verify.Lost)} lost");
                }
                console.Write(table);
                console.MarkupLine($"stable writes / ping = [bold]{writeVsPing:F2}[/]; PI checks on / off = [bold]{checksOnVsOff:F2}[/]");
                LoadReport checkedRun = reports[1];
                double verifyShare = checkedRun.Disk.VerifyMs / (checkedRun.DurationSeconds * 1000);
                console.MarkupLine($"disk PI checks of the median checked run: {checkedRun.Disk.VerifyMs:F1} ms of CPU for {checkedRun.Disk.SectorsWritten} sectors "
                    + $"({checkedRun.Disk.VerifyMs * 1e6 / Math.Max(1, checkedRun.Disk.SectorsWritten):F0} ns a sector, {verifyShare:P2} of one core over the run)");
                if (parse.GetValue(json) is string path)
                {
                    var doc = new { writeVsPing = Math.Round(writeVsPing, 3), checksOnVsOff = Math.Round(checksOnVsOff, 3), rounds = roundCount, medians = reports, all = all };
                    await File.WriteAllTextAsync(path, JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true }), CancellationToken.None);
                }
                return all.SelectMany(l => l).All(r => r.Passed) ? CliApp.ExitOk : CliApp.ExitFailed;
            }
            catch (Exception e) when (e is ConnectionException or ConfigException or TimeoutException or InvalidOperationException or StorageException)
            {
                await stderr.WriteLineAsync($"orleansdif bench cluster: {e.Message}");
                return CliApp.ExitFailed;
            }
        });
        return command;
    }
}
