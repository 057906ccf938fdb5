using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using OrleansDif.Cluster;

namespace OrleansDif.LoadGenerator;

/// <summary>An Orleans client connected to the gateways of a cluster config.</summary>
public sealed class ClusterClient : IAsyncDisposable
{
    private readonly IHost _host;

    private ClusterClient(IHost host)
    {
        _host = host;
        Client = host.Services.GetRequiredService<IClusterClient>();
    }

    public IClusterClient Client { get; }

    public static async Task<ClusterClient> ConnectAsync(ClusterConfig config, int expectedSilos, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        string? tlsRefusal = null; // the last certificate this client refused, for the error it gives
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = config.ClusterId;
                o.ServiceId = config.ServiceId;
            });
            client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromMilliseconds(config.ResponseTimeoutMs));
            if (config.Tls.Required)
            {
                var certificate = ClusterTls.LoadCertificate(config);
                client.UseTls(certificate, o => ClusterTls.Configure(o, certificate, refused => tlsRefusal = refused));
            }
            if (config.UsesRedis)
            {
                client.UseRedisClustering(config.Redis); // the gateways that are alive, from membership
            }
            else
            {
                client.UseStaticClustering(config.Gateways.ToArray());
            }
            // Silos may still be starting: retry for a while, then give up with a clear message.
            var giveUp = DateTime.UtcNow + timeout;
            client.UseConnectionRetryFilter(async (_, ct) =>
            {
                if (DateTime.UtcNow > giveUp)
                {
                    return false;
                }
                await Task.Delay(500, ct);
                return true;
            });
        });
        IHost host = builder.Build();
        try
        {
            using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            connectTimeout.CancelAfter(timeout + TimeSpan.FromSeconds(10));
            await host.StartAsync(connectTimeout.Token);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            host.Dispose();
            string gateways = string.Join(", ", config.Gateways);
            string hint = config.Tls.Required
                ? $" (TLS: the silos must present, and accept, this config's certificate{(tlsRefusal is null ? "" : "; " + tlsRefusal)})"
                : " (if the cluster requires TLS, this client needs its certificate: the config's tls section)";
            throw new ConnectionException($"could not connect to the cluster at {gateways}: {e.Message}{hint}", e);
        }
        var connected = new ClusterClient(host);
        // Wait until every silo of the config has joined, so the run spreads over all of them.
        var deadline = DateTime.UtcNow + timeout;
        IManagementGrain management = connected.Client.GetGrain<IManagementGrain>(0);
        while (true)
        {
            int active;
            try
            {
                active = (await management.GetHosts(onlyActive: true)).Count;
            }
            catch (Exception) when (DateTime.UtcNow < deadline)
            {
                active = 0;
            }
            if (active >= expectedSilos)
            {
                return connected;
            }
            if (DateTime.UtcNow > deadline)
            {
                await connected.DisposeAsync();
                throw new ConnectionException($"only {active} of {expectedSilos} silos joined within {timeout.TotalSeconds:F0} s", null);
            }
            await Task.Delay(250, cancellationToken);
        }
    }

    public async Task<int> ActiveSilosAsync() =>
        (await Client.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Count;

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _host.StopAsync(TimeSpan.FromSeconds(5));
        }
        finally
        {
            _host.Dispose();
        }
    }
}

/// <summary>The cluster could not be reached.</summary>
public sealed class ConnectionException(string message, Exception? inner) : Exception(message, inner);
