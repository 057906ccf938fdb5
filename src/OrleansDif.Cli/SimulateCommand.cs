using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using OrleansDif.Simulation;
using Spectre.Console;

namespace OrleansDif.Cli;

/// <summary><c>orleansdif simulate</c>: seeded schedules of the writeback protocol, every invariant checked after every step.</summary>
internal static class SimulateCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var seed = new Option<int>("--seed") { Description = "Seed of the first schedule (the others: +1, +2, ...)", DefaultValueFactory = _ => 1 };
        var schedules = new Option<int>("--schedules") { Description = "How many schedules", DefaultValueFactory = _ => 2000 };
        var policy = new Option<string>("--policy") { Description = "stable, bounce, unstable, or all (schedule i runs policy i mod 3)", DefaultValueFactory = _ => "all" };
        policy.AcceptOnlyFromAmong("stable", "bounce", "unstable", "all");
        var steps = new Option<int>("--steps") { Description = "Steps per schedule before its drain", DefaultValueFactory = _ => 300 };
        var pages = new Option<int>("--pages") { Description = "Pages of the simulated volume (two disks)", DefaultValueFactory = _ => 8 };
        var noFaults = new Option<bool>("--no-faults") { Description = "No memory, transit or media bit flips, no lost, torn or misdirected writes" };
        var noCrashes = new Option<bool>("--no-crashes") { Description = "No activation losses or power losses" };
        var noTagCache = new Option<bool>("--no-tag-cache") { Description = "Guard tags only at writeback (none cached at copy-in)" };
        var noStoreTags = new Option<bool>("--no-store-tags") { Description = "A store leaves the page writable and untagged until its writeback (as Linux)" };
        var noDirtyLog = new Option<bool>("--no-dirty-log") { Description = "No durable dirty log: loss judgments after a power loss are conservative" };
        var guard = new Option<string>("--guard") { Description = "crc16 (T10 DIF, 8-byte tuples) or crc64 (NVMe 64b Guard, 16-byte tuples)", DefaultValueFactory = _ => "crc16" };
        guard.AcceptOnlyFromAmong("crc16", "crc64");
        var trace = new Option<bool>("--trace") { Description = "Print the last steps of every schedule that failed (always for one schedule)" };
        var json = new Option<string?>("--json") { Description = "Write the summary as JSON to this path" };
        var command = new Command("simulate", "Run seeded schedules of the writeback protocol (pages, flusher, disks, crashes, power loss, faults); exit 0 every invariant held, 1 one failed, 2 bad usage")
        {
            seed, schedules, policy, steps, pages, noFaults, noCrashes, noTagCache, noStoreTags, noDirtyLog, guard, trace, json,
        };
        command.SetAction(async (parse, ct) =>
        {
            var template = new SimulationOptions
            {
                Steps = parse.GetValue(steps),
                Pages = parse.GetValue(pages),
                Faults = !parse.GetValue(noFaults),
                Crashes = !parse.GetValue(noCrashes),
                TagsAtCopyIn = !parse.GetValue(noTagCache),
                StoreTags = !parse.GetValue(noStoreTags),
                DirtyLog = !parse.GetValue(noDirtyLog),
                Guard = parse.GetValue(guard) == "crc64" ? GuardKind.Crc64 : GuardKind.Crc16,
                KeepTrace = parse.GetValue(trace) || parse.GetValue(schedules) == 1,
            };
            int count = parse.GetValue(schedules);
            try
            {
                template.Validate();
                if (count is < 1 or > 10_000_000)
                {
                    throw new ArgumentOutOfRangeException("--schedules", count, "schedules must be 1..10000000");
                }
            }
            catch (ArgumentOutOfRangeException e)
            {
                await stderr.WriteLineAsync($"orleansdif simulate: {e.Message.Split(Environment.NewLine)[0]}");
                return CliApp.ExitUsage;
            }
            WritebackPolicy[] policies = parse.GetValue(policy) switch
            {
                "stable" => [WritebackPolicy.Stable],
                "bounce" => [WritebackPolicy.Bounce],
                "unstable" => [WritebackPolicy.Unstable],
                _ => [WritebackPolicy.Stable, WritebackPolicy.Bounce, WritebackPolicy.Unstable],
            };
            var clock = Stopwatch.StartNew();
            SimulationResult[] results = SimulationRunner.RunMany(parse.GetValue(seed), count, policies, template, cancellationToken: ct);
            double seconds = clock.Elapsed.TotalSeconds;
            IAnsiConsole console = CliApp.AnsiConsoleFor(stdout);
            Report(console, results, seconds, count == 1 || parse.GetValue(trace));
            if (parse.GetValue(json) is string path)
            {
                await File.WriteAllTextAsync(path, Json(results, seconds), CancellationToken.None);
            }
            return results.All(r => r.Passed) ? CliApp.ExitOk : CliApp.ExitFailed;
        });
        return command;
    }

    private static void Report(IAnsiConsole console, SimulationResult[] results, double seconds, bool trace)
    {
        int failed = results.Count(r => !r.Passed);
        long steps = results.Sum(r => (long)r.Options.Steps);
        console.MarkupLine($"{results.Length} schedules, {steps} steps, in {seconds:F1} s: [{(failed == 0 ? "green" : "red")}]{results.Length - failed} passed, {failed} failed[/]");
        var faults = new Table().AddColumn("fault").AddColumn(new TableColumn("injected").RightAligned()).AddColumn(new TableColumn("detected").RightAligned())
            .AddColumn(new TableColumn("masked").RightAligned()).AddColumn(new TableColumn("silent in the known window").RightAligned());
        foreach (string kind in results[0].Faults.Keys)
        {
            faults.AddRow(kind, Sum(results, r => r.Faults[kind].Injected), Sum(results, r => r.Faults[kind].Detected),
                Sum(results, r => r.Faults[kind].Masked), Sum(results, r => r.Faults[kind].SilentInWindow));
        }
        console.Write(faults);
        var events = new Table().AddColumn("event").AddColumn(new TableColumn("count").RightAligned());
        foreach (string name in results.SelectMany(r => r.Counters.Keys).Distinct().Order(StringComparer.Ordinal))
        {
            events.AddRow(Markup.Escape(name), results.Sum(r => r.Count(name)).ToString());
        }
        console.Write(events);
        foreach (SimulationResult r in results.Where(r => !r.Passed).Take(5))
        {
            console.MarkupLine($"[red]seed {r.Options.Seed} ({r.Options.Policy.ToString().ToLowerInvariant()}): {Markup.Escape(r.Violations[0].ToString())}[/]");
            console.MarkupLine($"  replay: {Markup.Escape(SimulationRunner.ReplayCommand(r.Options))}");
            if (trace)
            {
                foreach (string line in r.Trace)
                {
                    console.MarkupLine($"  {Markup.Escape(line)}");
                }
            }
        }
        if (trace && results.Length == 1 && results[0].Passed)
        {
            foreach (string line in results[0].Trace)
            {
                console.MarkupLine($"  {Markup.Escape(line)}");
            }
        }
    }

    private static string Sum(SimulationResult[] results, Func<SimulationResult, int> value) => results.Sum(value).ToString();

    private static string Json(SimulationResult[] results, double seconds) => JsonSerializer.Serialize(new
    {
        schedules = results.Length,
        seconds = Math.Round(seconds, 2),
        passed = results.Count(r => r.Passed),
        failed = results.Where(r => !r.Passed).Select(r => new
        {
            seed = r.Options.Seed,
            policy = r.Options.Policy.ToString().ToLowerInvariant(),
            violation = r.Violations[0].ToString(),
            replay = SimulationRunner.ReplayCommand(r.Options),
        }).ToArray(),
        faults = results[0].Faults.Keys.ToDictionary(k => k, k => new
        {
            injected = results.Sum(r => r.Faults[k].Injected),
            detected = results.Sum(r => r.Faults[k].Detected),
            masked = results.Sum(r => r.Faults[k].Masked),
            silentInWindow = results.Sum(r => r.Faults[k].SilentInWindow),
        }),
        events = results.SelectMany(r => r.Counters.Keys).Distinct().Order(StringComparer.Ordinal).ToDictionary(n => n, n => results.Sum(r => r.Count(n))),
    }, new JsonSerializerOptions { WriteIndented = true });
}
