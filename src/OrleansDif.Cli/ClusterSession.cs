using OrleansDif.LoadGenerator;
using OrleansDif.Cluster;
using OrleansDif.Silo;
using Spectre.Console;

namespace OrleansDif.Cli;

/// <summary>A connected client, and the local silo processes it started when asked to (stopped on dispose).</summary>
internal sealed class ClusterSession : IAsyncDisposable
{
    private LocalCluster? _local;
    private StreamWriter? _siloLog;
    private ClusterClient? _client;
    private IAnsiConsole _console = null!;

    public IClusterClient Client => _client!.Client;

    /// <summary>The silo processes this session started (with --local).</summary>
    public LocalCluster? Local => _local;

    /// <summary>Where the silos' output goes (with --local).</summary>
    public TextWriter? Log => _siloLog;

    public static async Task<ClusterSession> OpenAsync(ClusterConfig cluster, string configPath, string[] setValues, bool local,
        IAnsiConsole console, CancellationToken ct)
    {
        var session = new ClusterSession { _console = console };
        try
        {
            if (local)
            {
                Directory.CreateDirectory(cluster.DataPath);
                string logPath = Path.Combine(cluster.DataPath, "silos.log");
                session._siloLog = new StreamWriter(logPath, append: true) { AutoFlush = true };
                console.MarkupLine($"starting {cluster.Silos.Count} silos (output in {Markup.Escape(logPath)})");
                session._local = new LocalCluster(cluster, configPath, CliApp.ThisTool(), session._siloLog);
                await session._local.StartAsync(SiloCommands.ChildArguments(setValues), TimeSpan.FromSeconds(90), ct);
            }
            // Silos we just started may take a while to join; a cluster that should already be up gets 10 s.
            session._client = await ClusterClient.ConnectAsync(cluster, cluster.Silos.Count, TimeSpan.FromSeconds(local ? 60 : 10), ct);
            return session;
        }
        catch
        {
            await session.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }
        if (_local is not null)
        {
            _console.MarkupLine("stopping the silos");
            await _local.DisposeAsync();
        }
        _siloLog?.Dispose();
    }
}
