using System.CommandLine;
using System.Net;
using Microsoft.Extensions.Logging;
using OrleansDif.Cluster;
using OrleansDif.LoadGenerator;
using OrleansDif.Nbd;
using Spectre.Console;

namespace OrleansDif.Cli;

/// <summary><c>orleansdif nbd</c>: serves every volume of the config (and its policy variants) as NBD exports until Ctrl-C.</summary>
internal static class NbdCommand
{
    public const int DefaultPort = 10809;

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var config = SiloCommands.ConfigOption();
        var set = SiloCommands.SetOption();
        var local = new Option<bool>("--local") { Description = "Start the config's silos as child processes, and serve from inside silo 0" };
        var port = new Option<int>("--port") { Description = "TCP port", DefaultValueFactory = _ => DefaultPort };
        var bind = new Option<string>("--bind") { Description = "Address to listen on (with --local: silo 0's address)", DefaultValueFactory = _ => "127.0.0.1" };
        var command = new Command("nbd", "Serve the config's volumes as NBD exports (fio, qemu-img, nbdcopy) until Ctrl-C")
        {
            config, set, local, port, bind,
        };
        command.SetAction(async (parse, ct) =>
        {
            IAnsiConsole console = CliApp.AnsiConsoleFor(stdout);
            string[] setValues = parse.GetValue(set) ?? [];
            ClusterConfig cluster;
            IPEndPoint endpoint;
            bool inSilo = parse.GetValue(local);
            try
            {
                endpoint = Endpoint(parse.GetValue(bind)!, parse.GetValue(port));
                (cluster, setValues) = inSilo
                    ? InSilo0(parse.GetValue(config)!, setValues, endpoint.Port)
                    : (ClusterConfig.Load(parse.GetValue(config)!, SiloCommands.Overrides(setValues)), setValues);
            }
            catch (Exception e) when (e is UsageException or ConfigException)
            {
                await stderr.WriteLineAsync($"orleansdif nbd: {e.Message}");
                return CliApp.ExitUsage;
            }
            await using ClusterSession session = await ClusterSession.OpenAsync(cluster, parse.GetValue(config)!, setValues, inSilo, console, ct);
            var catalog = new VolumeCatalog(session.Client, cluster.Volumes.Select(v => v.ToVolumeConfig()));
            using ILoggerFactory logs = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
            NbdServer? server = null;
            IPEndPoint serving;
            if (inSilo)
            {
                serving = await Silo0ServesAsync(cluster, ct);
            }
            else
            {
                server = new NbdServer(catalog, endpoint, logs.CreateLogger("nbd"));
                server.Start();
                serving = server.Endpoint;
            }
            await using (server)
            {
                console.MarkupLine($"serving NBD on {Markup.Escape(serving.ToString())}{(inSilo ? $" (inside silo {Markup.Escape(cluster.Silos[0].Name)})" : "")}; exports:");
                foreach (string name in catalog.Names)
                {
                    console.MarkupLine($"  nbd://{Markup.Escape(serving.Address.ToString())}:{serving.Port}/{Markup.Escape(name)}");
                }
                console.MarkupLine("Ctrl-C stops");
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                }
                if (server is null)
                {
                    console.MarkupLine("the server's counts are in the silos' log");
                    return CliApp.ExitOk;
                }
                console.MarkupLine(Markup.Escape(server.Stats.ToString()));
                return server.Stats.IoErrors == 0 ? CliApp.ExitOk : CliApp.ExitFailed;
            }
        });
        return command;
    }

    /// <summary>
    /// The config with silo 0 serving NBD on <paramref name="port"/> (the front end inside silo 0: page calls stay in its
    /// process, and the pages it serves live there), and the overrides that say so, for the child silos too.
    /// </summary>
    public static (ClusterConfig Cluster, string[] SetValues) InSilo0(string configPath, string[] setValues, int port)
    {
        if (port == 0)
        {
            throw new UsageException("--port 0: a silo serves NBD on a port of its config; name one");
        }
        string[] values = [.. setValues, $"silos:0:nbdPort={port}"];
        return (ClusterConfig.Load(configPath, SiloCommands.Overrides(values)), values);
    }

    /// <summary>Waits until silo 0's NBD front end accepts connections; its endpoint.</summary>
    public static async Task<IPEndPoint> Silo0ServesAsync(ClusterConfig cluster, CancellationToken ct)
    {
        var endpoint = new IPEndPoint(IPAddress.Parse(cluster.Silos[0].Address), cluster.Silos[0].NbdPort!.Value);
        await NbdBenchmark.WaitForPortAsync(endpoint, TimeSpan.FromSeconds(30), ct);
        return endpoint;
    }

    public static IPEndPoint Endpoint(string bind, int port)
    {
        if (port is < 0 or > 65535)
        {
            throw new UsageException($"--port {port}: must be 0..65535");
        }
        if (!IPAddress.TryParse(bind, out IPAddress? address))
        {
            throw new UsageException($"--bind '{bind}' is not an IP address");
        }
        return new IPEndPoint(address, port);
    }
}
