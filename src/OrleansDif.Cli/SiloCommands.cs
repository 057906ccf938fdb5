using System.CommandLine;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OrleansDif.LoadGenerator;
using OrleansDif.Cluster;
using OrleansDif.Silo;
using Spectre.Console;

namespace OrleansDif.Cli;

/// <summary><c>orleansdif silo</c> (one silo process) and <c>orleansdif cluster</c> (all silos of a config as child processes).</summary>
internal static class SiloCommands
{
    public static Option<string> ConfigOption() => new("--config")
    {
        Description = "Cluster config file",
        DefaultValueFactory = _ => "cluster-config/local.json",
    };

    public static Option<string[]> SetOption() => new("--set")
    {
        Description = "Override a config value, as key=value (e.g. dataDirectory=/tmp/d, silos:0:gatewayPort=31000)",
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>The same overrides as arguments of a child silo process.</summary>
    public static IEnumerable<string> ChildArguments(string[]? set) => (set ?? []).SelectMany(s => new[] { "--set", s });

    /// <summary>"key=value" pairs as command-line configuration arguments.</summary>
    public static string[] Overrides(string[]? set) =>
        (set ?? []).Select(s => s.Contains('=') ? "--" + s : throw new ConfigException($"--set '{s}' is not key=value")).ToArray();

    /// <summary>Environment variable with the silos' minimum log level (e.g. Information: each loss judgment is logged).</summary>
    public const string LogLevelVariable = "ODIF_LOG_LEVEL"; // outside the ORLEANSDIF_ configuration prefix

    /// <summary>The level <see cref="LogLevelVariable"/> names; Warning when unset; a usage error when it names none.</summary>
    public static LogLevel LevelFromEnvironment() => ParseLevel(Environment.GetEnvironmentVariable(LogLevelVariable));

    /// <summary>A log level by name (any case); Warning for null or empty; <see cref="ConfigException"/> otherwise.</summary>
    public static LogLevel ParseLevel(string? value) =>
        value is not { Length: > 0 } ? LogLevel.Warning
        : Enum.TryParse(value, ignoreCase: true, out LogLevel level) && Enum.IsDefined(level) && !int.TryParse(value, out _) ? level
        : throw new ConfigException($"{LogLevelVariable}='{value}' is not a log level ({string.Join(", ", Enum.GetNames<LogLevel>())})");

    public static Command CreateSilo(TextWriter stdout, TextWriter stderr)
    {
        var config = ConfigOption();
        var set = SetOption();
        var index = new Option<int>("--silo") { Description = "Index of this silo in the config", Required = true };
        var level = new Option<LogLevel?>("--log-level") { Description = $"Minimum log level (default: ${LogLevelVariable}, else Warning; the silos of --local runs take it from there)" };
        var command = new Command("silo", "Run one silo of the cluster config (Ctrl-C or SIGTERM stops it cleanly)") { config, index, set, level };
        command.SetAction(async (parse, ct) =>
        {
            ClusterConfig cluster;
            IHost host;
            try
            {
                cluster = ClusterConfig.Load(parse.GetValue(config)!, Overrides(parse.GetValue(set)));
                host = SiloHost.Build(cluster, parse.GetValue(index), parse.GetValue(level) ?? LevelFromEnvironment());
            }
            catch (ConfigException e)
            {
                await stderr.WriteLineAsync($"orleansdif silo: {e.Message}");
                return CliApp.ExitUsage;
            }
            SiloConfig me = cluster.Silos[parse.GetValue(index)];
            using var stop = ChildStopToken(ct, out IDisposable? signals);
            ct = stop.Token;
            try
            {
                await host.StartAsync(ct);
                await stdout.WriteLineAsync($"{me.Name} up: silo {me.Address}:{me.SiloPort}, gateway {me.Address}:{me.GatewayPort}, data {cluster.DataPath}");
                await host.WaitForShutdownAsync(ct);
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception e)
            {
                await stderr.WriteLineAsync($"orleansdif silo: {me.Name} failed: {e.Message}");
                return CliApp.ExitFailed;
            }
            finally
            {
                await host.StopAsync(TimeSpan.FromSeconds(20));
                host.Dispose();
                signals?.Dispose();
            }
            await stdout.WriteLineAsync($"{me.Name} stopped");
            return CliApp.ExitOk;
        });
        return command;
    }

    /// <summary>
    /// A silo started by <c>cluster</c> or <c>load --local</c> ignores the terminal's Ctrl-C (its parent stops the
    /// silos in order) and stops on SIGTERM or when its parent is gone. A silo started by hand stops on Ctrl-C.
    /// </summary>
    private static CancellationTokenSource ChildStopToken(CancellationToken commandToken, out IDisposable? signals)
    {
        signals = null;
        if (!int.TryParse(Environment.GetEnvironmentVariable(LocalCluster.ParentPidVariable), out int parent))
        {
            return CancellationTokenSource.CreateLinkedTokenSource(commandToken);
        }
        var stop = new CancellationTokenSource();
        var interrupt = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => c.Cancel = true);
        var terminate = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            stop.Cancel();
        });
        signals = new CompositeDisposable(interrupt, terminate);
        _ = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var p = System.Diagnostics.Process.GetProcessById(parent);
                    if (p.HasExited)
                    {
                        break;
                    }
                }
                catch (ArgumentException)
                {
                    break; // the parent is gone: do not outlive it
                }
                await Task.Delay(1000);
            }
            stop.Cancel();
        });
        return stop;
    }

    private sealed class CompositeDisposable(params IDisposable[] items) : IDisposable
    {
        public void Dispose()
        {
            foreach (IDisposable item in items)
            {
                item.Dispose();
            }
        }
    }

    public static Command CreateCluster(TextWriter stdout, TextWriter stderr)
    {
        var config = ConfigOption();
        var set = SetOption();
        var command = new Command("cluster", "Start every silo of the config as a child process; Ctrl-C stops them all") { config, set };
        command.SetAction(async (parse, ct) =>
        {
            IAnsiConsole console = CliApp.AnsiConsoleFor(stdout);
            string path = parse.GetValue(config)!;
            ClusterConfig cluster;
            string[] overrides;
            try
            {
                overrides = Overrides(parse.GetValue(set));
                cluster = ClusterConfig.Load(path, overrides);
            }
            catch (ConfigException e)
            {
                await stderr.WriteLineAsync($"orleansdif cluster: {e.Message}");
                return CliApp.ExitUsage;
            }
            await using var local = new LocalCluster(cluster, path, CliApp.ThisTool(), stdout);
            try
            {
                await local.StartAsync(ChildArguments(parse.GetValue(set)), TimeSpan.FromSeconds(60), ct);
                await using ClusterClient client = await ClusterClient.ConnectAsync(cluster, cluster.Silos.Count, TimeSpan.FromSeconds(60), ct);
                foreach (VolumeSection v in cluster.Volumes)
                {
                    await client.Client.Volume(v.Id).Create(v.ToVolumeConfig());
                }
                var table = new Table().AddColumns("silo", "pid", "silo endpoint", "gateway");
                for (int i = 0; i < cluster.Silos.Count; i++)
                {
                    SiloConfig s = cluster.Silos[i];
                    table.AddRow(s.Name, local.Processes[i].Id.ToString(), $"{s.Address}:{s.SiloPort}", $"{s.Address}:{s.GatewayPort}");
                }
                console.Write(table);
                console.MarkupLine($"cluster [green]{cluster.ClusterId}[/] formed: {await client.ActiveSilosAsync()} silos, data in {Markup.Escape(cluster.DataPath)}, volumes: {string.Join(", ", cluster.Volumes.Select(v => v.Id))}. Ctrl-C stops it.");
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception e) when (e is ConfigException or ConnectionException or TimeoutException or InvalidOperationException)
            {
                await stderr.WriteLineAsync($"orleansdif cluster: {e.Message}");
                return CliApp.ExitFailed;
            }
            console.MarkupLine("stopping the silos");
            return CliApp.ExitOk;
        });
        return command;
    }
}
