using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using OrleansDif.Cluster;
using OrleansDif.LoadGenerator;
using OrleansDif.Nbd;
using Spectre.Console;

namespace OrleansDif.Cli;

/// <summary>
/// <c>orleansdif bench nbd</c>: the same fio jobs over NBD against <c>orleansdif nbd</c> (a volume, stable policy, DIF
/// checked at the disks) and against <c>nbdkit file</c> on a file of the same size, interleaved; medians and ratios.
/// </summary>
internal static class NbdBenchmark
{
    /// <summary>One fio job: its name and the fio arguments that make it.</summary>
    public sealed record Job(string Name, string[] Arguments);

    public static readonly Job[] Jobs =
    [
        new("randwrite", ["--rw=randwrite"]),
        new("randwrite-fsync32", ["--rw=randwrite", "--fsync=32"]),
        new("randread", ["--rw=randread"]),
    ];

    /// <summary>The jobs named in a comma-separated list (all when none); an unknown name is a usage error.</summary>
    public static Job[] SelectJobs(string? names)
    {
        if (string.IsNullOrWhiteSpace(names))
        {
            return Jobs;
        }
        var picked = new List<Job>();
        foreach (string n in names.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            Job job = Jobs.FirstOrDefault(j => j.Name == n)
                ?? throw new UsageException($"--jobs: no job '{n}' (jobs: {string.Join(", ", Jobs.Select(j => j.Name))})");
            if (!picked.Contains(job))
            {
                picked.Add(job);
            }
        }
        return [.. picked];
    }

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var config = SiloCommands.ConfigOption();
        var set = SiloCommands.SetOption();
        var local = new Option<bool>("--local") { Description = "Start the config's silos as child processes first" };
        var duration = new Option<string>("--duration") { Description = "Length of each fio run", DefaultValueFactory = _ => "8s" };
        var rounds = new Option<int>("--rounds") { Description = "Rounds, servers alternated; medians reported", DefaultValueFactory = _ => 3 };
        var depth = new Option<int>("--iodepth") { Description = "fio queue depth", DefaultValueFactory = _ => 32 };
        var export = new Option<string?>("--export") { Description = "Export to measure (default: the first volume, stable policy)" };
        var json = new Option<string?>("--json") { Description = "Write every run, the medians and the ratios as JSON to this path" };
        var warmup = new Option<string>("--warmup") { Description = "Unrecorded run of each job on each server before the rounds (JIT, activations); 0s for none", DefaultValueFactory = _ => "3s" };
        var jobs = new Option<string?>("--jobs") { Description = $"Comma-separated jobs to run (default all: {string.Join(",", Jobs.Select(j => j.Name))})" };
        var command = new Command("nbd", "fio over NBD: orleansdif nbd vs nbdkit file, 4 KiB random writes (with and without --fsync=32) and reads")
        {
            config, set, local, duration, rounds, depth, export, json, jobs, warmup,
        };
        command.SetAction(async (parse, ct) =>
        {
            IAnsiConsole console = CliApp.AnsiConsoleFor(stdout);
            foreach (string tool in new[] { "fio", "nbdkit" })
            {
                if (FindTool(tool) is null)
                {
                    console.MarkupLine($"bench nbd skipped: {tool} is not installed (apt-get install fio nbdkit)");
                    return CliApp.ExitOk;
                }
            }
            string[] setValues = parse.GetValue(set) ?? [];
            ClusterConfig cluster;
            TimeSpan runtime, warm;
            bool inSilo = parse.GetValue(local);
            int roundCount = parse.GetValue(rounds), iodepth = parse.GetValue(depth);
            Job[] selected;
            try
            {
                selected = SelectJobs(parse.GetValue(jobs));
                if (roundCount is < 1 or > 100 || iodepth is < 1 or > 1024)
                {
                    throw new UsageException("--rounds must be 1..100 and --iodepth 1..1024");
                }
                runtime = LoadOptions.ParseDuration(parse.GetValue(duration)!);
                warm = parse.GetValue(warmup) is "0" or "0s" ? TimeSpan.Zero : LoadOptions.ParseDuration(parse.GetValue(warmup)!);
                // As `nbd --local` serves: from inside silo 0.
                (cluster, setValues) = inSilo
                    ? NbdCommand.InSilo0(parse.GetValue(config)!, setValues, FreePort())
                    : (ClusterConfig.Load(parse.GetValue(config)!, SiloCommands.Overrides(setValues)), setValues);
                if (cluster.Volumes.Count == 0)
                {
                    throw new UsageException("the cluster config has no volume");
                }
            }
            catch (Exception e) when (e is UsageException or ConfigException)
            {
                await stderr.WriteLineAsync($"orleansdif bench nbd: {e.Message}");
                return CliApp.ExitUsage;
            }
            await using ClusterSession session = await ClusterSession.OpenAsync(cluster, parse.GetValue(config)!, setValues, inSilo, console, ct);
            var catalog = new VolumeCatalog(session.Client, cluster.Volumes.Select(v => v.ToVolumeConfig()));
            string name = parse.GetValue(export) ?? $"{cluster.Volumes[0].Id}-stable";
            if (await catalog.DeviceAsync(name) is not VolumeDevice device)
            {
                await stderr.WriteLineAsync($"orleansdif bench nbd: no export '{name}' (exports: {string.Join(", ", catalog.Names)})");
                return CliApp.ExitUsage;
            }
            NbdServer? server = null;
            string ours;
            if (inSilo)
            {
                IPEndPoint silo0 = await NbdCommand.Silo0ServesAsync(cluster, ct);
                ours = $"nbd://{silo0.Address}:{silo0.Port}/{name}";
            }
            else
            {
                server = new NbdServer(catalog, new IPEndPoint(IPAddress.Loopback, 0));
                server.Start();
                ours = $"nbd://127.0.0.1:{server.Endpoint.Port}/{name}";
            }
            await using NbdServer? disposeServer = server;
            string dir = Directory.CreateTempSubdirectory("orleansdif-nbdbench-").FullName;
            string file = Path.Combine(dir, "baseline.img");
            await using (FileStream f = File.Create(file))
            {
                f.SetLength(device.Size);
            }
            int basePort = FreePort();
            Process nbdkit = StartNbdkit(basePort, file);
            int restarts = 0;
            try
            {
                await WaitForPortAsync(basePort, TimeSpan.FromSeconds(10), ct);
                var servers = new (string Name, string Uri)[]
                {
                    ("orleansdif", ours),
                    ("nbdkit file", $"nbd://127.0.0.1:{basePort}/"),
                };
                console.MarkupLine($"export {Markup.Escape(name)} served {(inSilo ? "inside silo 0" : "by this client process")}: {device.Size / 1048576.0:F0} MiB, policy {device.Volume.Policy.ToString().ToLowerInvariant()}, "
                    + $"{device.Volume.SectorSize}-byte sectors with PI checked at the disks; nbdkit file on a file of the same size; fio 4 KiB, iodepth {iodepth}, {runtime.TotalSeconds:F0} s a run");
                // Fill both once, so that reads read written data on both.
                foreach (var (_, uri) in servers)
                {
                    await RunFioAsync(uri, new Job("fill", ["--rw=write", "--bs=1m"]), iodepth: 4, runtime: null, ct);
                }
                // nbdkit sometimes exits (status 0) when started by this process, between runs or during one: it is
                // started again on the same file and port, said, counted, and a run it broke is run again once.
                async Task RestartNbdkitAsync()
                {
                    console.MarkupLine($"nbdkit exited ({nbdkit.ExitCode}); started again");
                    nbdkit.Dispose();
                    nbdkit = StartNbdkit(basePort, file);
                    restarts++;
                    await WaitForPortAsync(basePort, TimeSpan.FromSeconds(10), ct);
                }
                async Task<double> RunAsync(string uri, Job job, TimeSpan length)
                {
                    if (uri != ours && nbdkit.HasExited)
                    {
                        await RestartNbdkitAsync();
                    }
                    try
                    {
                        return await RunFioAsync(uri, job, iodepth, length, ct);
                    }
                    catch (InvalidOperationException) when (uri != ours && nbdkit.WaitForExit(TimeSpan.FromSeconds(2)))
                    {
                        await RestartNbdkitAsync();
                        return await RunFioAsync(uri, job, iodepth, length, ct);
                    }
                }
                if (warm > TimeSpan.Zero)
                {
                    foreach (Job job in selected)
                    {
                        foreach (var (serverName, uri) in servers)
                        {
                            double w = await RunAsync(uri, job, warm);
                            console.MarkupLine($"warm-up   {job.Name,-18} {Markup.Escape(serverName),-12} {w,9:F0} IOPS (not counted)");
                        }
                    }
                }
                var iops = new Dictionary<(string Job, string Server), List<double>>();
                for (int round = 0; round < roundCount; round++)
                {
                    foreach (Job job in selected)
                    {
                        for (int k = 0; k < servers.Length; k++)
                        {
                            var (serverName, uri) = servers[(k + round) % servers.Length]; // alternate who goes first
                            double v = await RunAsync(uri, job, runtime);
                            console.MarkupLine($"round {round + 1}/{roundCount} {job.Name,-18} {Markup.Escape(serverName),-12} {v,9:F0} IOPS");
                            iops.TryAdd((job.Name, serverName), []);
                            iops[(job.Name, serverName)].Add(v);
                        }
                    }
                }
                var table = new Table().AddColumns("fio job", "orleansdif IOPS", "nbdkit file IOPS", "ratio");
                var results = new JsonObject();
                foreach (Job job in selected)
                {
                    double mine = Median(iops[(job.Name, servers[0].Name)]);
                    double baseline = Median(iops[(job.Name, servers[1].Name)]);
                    double ratio = mine / baseline;
                    table.AddRow(job.Name, mine.ToString("F0"), baseline.ToString("F0"), ratio.ToString("F2"));
                    results[job.Name] = new JsonObject
                    {
                        ["orleansdif"] = Math.Round(mine),
                        ["nbdkitFile"] = Math.Round(baseline),
                        ["ratio"] = Math.Round(ratio, 3),
                        ["orleansdifRounds"] = new JsonArray([.. iops[(job.Name, servers[0].Name)].Select(x => (JsonNode)Math.Round(x))]),
                        ["nbdkitFileRounds"] = new JsonArray([.. iops[(job.Name, servers[1].Name)].Select(x => (JsonNode)Math.Round(x))]),
                    };
                }
                console.Write(table);
                console.MarkupLine(Markup.Escape(server is null ? "server counts: in the silos' log" : $"server: {server.Stats}"));
                if (parse.GetValue(json) is string path)
                {
                    var doc = new JsonObject
                    {
                        ["export"] = name,
                        ["sizeBytes"] = device.Size,
                        ["policy"] = device.Volume.Policy.ToString().ToLowerInvariant(),
                        ["iodepth"] = iodepth,
                        ["runtimeSeconds"] = runtime.TotalSeconds,
                        ["warmupSeconds"] = warm.TotalSeconds,
                        ["rounds"] = roundCount,
                        ["jobs"] = results,
                        ["servedFrom"] = inSilo ? "silo" : "client",
                        ["nbdkitRestarts"] = restarts,
                    };
                    await File.WriteAllTextAsync(path, doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }), CancellationToken.None);
                }
                return server is null || server.Stats.IoErrors == 0 ? CliApp.ExitOk : CliApp.ExitFailed;
            }
            catch (Exception e) when (e is InvalidOperationException or TimeoutException)
            {
                await stderr.WriteLineAsync($"orleansdif bench nbd: {e.Message}");
                if (nbdkit.HasExited || !s_nbdkitSaid.IsEmpty)
                {
                    await stderr.WriteLineAsync($"nbdkit {(nbdkit.HasExited ? $"exited ({nbdkit.ExitCode})" : "is running")}: {string.Join(" | ", s_nbdkitSaid)}");
                }
                return CliApp.ExitFailed;
            }
            finally
            {
                try
                {
                    nbdkit.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                    // exited already
                }
                nbdkit.Dispose();
                Directory.Delete(dir, recursive: true);
            }
        });
        return command;
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    /// <summary>Runs one fio job against <paramref name="uri"/>; its IOPS (reads plus writes).</summary>
    public static async Task<double> RunFioAsync(string uri, Job job, int iodepth, TimeSpan? runtime, CancellationToken ct)
    {
        var args = new List<string>
        {
            $"--name={job.Name}", "--ioengine=nbd", $"--uri={uri}", "--bs=4k", $"--iodepth={iodepth}", "--output-format=json",
        };
        args.AddRange(job.Arguments);
        if (runtime is TimeSpan t)
        {
            args.AddRange([$"--runtime={(int)Math.Ceiling(t.TotalSeconds)}", "--time_based"]);
        }
        var (code, output, error) = await RunAsync("fio", args, ct);
        if (code != 0)
        {
            throw new InvalidOperationException($"fio {job.Name} against {uri} failed ({code}): {error.Trim()} {output.Trim()}");
        }
        int start = output.IndexOf('{');
        JsonNode j = JsonNode.Parse(output[start..])!["jobs"]![0]!;
        if (j["error"]!.GetValue<int>() != 0)
        {
            throw new InvalidOperationException($"fio {job.Name} against {uri}: error {j["error"]}");
        }
        return j["read"]!["iops"]!.GetValue<double>() + j["write"]!["iops"]!.GetValue<double>();
    }

    public static async Task<(int Code, string Output, string Error)> RunAsync(string tool, IEnumerable<string> args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using Process p = Process.Start(psi) ?? throw new InvalidOperationException($"{tool} did not start");
        Task<string> output = p.StandardOutput.ReadToEndAsync(ct);
        Task<string> error = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        return (p.ExitCode, await output, await error);
    }

    /// <summary>The full path of <paramref name="tool"/> on PATH, or null.</summary>
    public static string? FindTool(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);

    /// <summary>
    /// nbdkit in the foreground, killed by this command when it ends. Not --exit-with-parent: that is tied to the
    /// thread that started it (PR_SET_PDEATHSIG), and a pool thread that retires would stop nbdkit mid-run.
    /// </summary>
    private static Process StartNbdkit(int port, string file)
    {
        var psi = new ProcessStartInfo("nbdkit") { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { "--foreground", "-i", "127.0.0.1", "-p", port.ToString(), "file", file })
        {
            psi.ArgumentList.Add(a);
        }
        Process p = Process.Start(psi) ?? throw new InvalidOperationException("nbdkit did not start");
        // Drained, so that nbdkit never blocks on a full pipe; what it says is kept for the error message.
        p.OutputDataReceived += (_, e) => Keep(e.Data);
        p.ErrorDataReceived += (_, e) => Keep(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private static readonly System.Collections.Concurrent.ConcurrentQueue<string> s_nbdkitSaid = new();

    private static void Keep(string? line)
    {
        if (line is not null && s_nbdkitSaid.Count < 100)
        {
            s_nbdkitSaid.Enqueue(line);
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static Task WaitForPortAsync(int port, TimeSpan timeout, CancellationToken ct) =>
        WaitForPortAsync(new IPEndPoint(IPAddress.Loopback, port), timeout, ct);

    /// <summary>Waits until something accepts connections at <paramref name="endpoint"/>.</summary>
    public static async Task WaitForPortAsync(IPEndPoint endpoint, TimeSpan timeout, CancellationToken ct)
    {
        int port = endpoint.Port;
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(endpoint, ct);
                return;
            }
            catch (SocketException) when (deadline.Elapsed < timeout)
            {
                await Task.Delay(50, ct);
            }
            catch (SocketException)
            {
                throw new TimeoutException($"nothing listens on {endpoint} after {timeout.TotalSeconds:F0} s");
            }
        }
    }
}
