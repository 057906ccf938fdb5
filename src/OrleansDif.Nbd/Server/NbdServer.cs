using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace OrleansDif.Nbd;

/// <summary>
/// An NBD server (fixed newstyle handshake, simple replies) for the exports of a catalog: one task per connection,
/// many requests in flight per connection, replies in completion order. A connection that breaks the protocol is
/// closed; every other one is served on.
/// </summary>
public sealed class NbdServer : IAsyncDisposable
{
    private readonly IExportCatalog _exports;
    private readonly ILogger _logger;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _connections = [];
    private Task? _accepting;

    public NbdServer(IExportCatalog exports, IPEndPoint endpoint, ILogger? logger = null)
    {
        _exports = exports;
        _logger = logger ?? NullLogger.Instance;
        _listener = new TcpListener(endpoint);
    }

    public NbdStats Stats { get; } = new();

    /// <summary>Requests in flight per connection at most (the reader waits beyond that).</summary>
    public int MaxInFlight { get; init; } = 128;

    /// <summary>The bound endpoint (port 0 in the constructor: the port chosen).</summary>
    public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndpoint;

    public void Start()
    {
        _listener.Start();
        _accepting = AcceptAsync(_stop.Token);
    }

    private async Task AcceptAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(ct);
            }
            catch (Exception) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException e)
            {
                _logger.LogWarning(e, "accept failed");
                continue;
            }
            socket.NoDelay = true;
            Stats.Connected();
            var connection = new NbdConnection(socket, _exports, Stats, _logger, MaxInFlight);
            lock (_connections)
            {
                _connections.RemoveAll(t => t.IsCompleted);
                _connections.Add(connection.RunAsync(ct));
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        if (_accepting is not null)
        {
            await _accepting;
        }
        Task[] running;
        lock (_connections)
        {
            running = [.. _connections];
        }
        await Task.WhenAll(running);
        _stop.Dispose();
    }
}
