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
        var local = new Option<bool>("--local") { Description = "Start the config's silos as child processes first" };
        var port = new Option<int>("--port") { Description = "TCP port", DefaultValueFactory = _ => DefaultPort };
        var bind = new Option<string>("--bind") { Description = "Address to listen on", DefaultValueFactory = _ => "127.0.0.1" };
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
            try
            {
                cluster = ClusterConfig.Load(parse.GetValue(config)!, SiloCommands.Overrides(setValues));
                endpoint = Endpoint(parse.GetValue(bind)!, parse.GetValue(port));
            }
            catch (Exception e) when (e is UsageException or ConfigException)
            {
                await stderr.WriteLineAsync($"orleansdif nbd: {e.Message}");
                return CliApp.ExitUsage;
            }
            await using ClusterSession session = await ClusterSession.OpenAsync(cluster, parse.GetValue(config)!, setValues, parse.GetValue(local), console, ct);
            var catalog = new VolumeCatalog(session.Client, cluster.Volumes.Select(v => v.ToVolumeConfig()));
            using ILoggerFactory logs = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
            await using var server = new NbdServer(catalog, endpoint, logs.CreateLogger("nbd"));
            server.Start();
            string host = server.Endpoint.Address.ToString();
            console.MarkupLine($"serving NBD on {Markup.Escape(server.Endpoint.ToString())}; exports:");
            foreach (string name in catalog.Names)
            {
                console.MarkupLine($"  nbd://{Markup.Escape(host)}:{server.Endpoint.Port}/{Markup.Escape(name)}");
            }
            console.MarkupLine("Ctrl-C stops");
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException)
            {
            }
            console.MarkupLine(Markup.Escape(server.Stats.ToString()));
            return server.Stats.IoErrors == 0 ? CliApp.ExitOk : CliApp.ExitFailed;
        });
        return command;
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
