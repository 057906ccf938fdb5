using System.Net;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OrleansDif.Cluster;
using OrleansDif.Grains;
using OrleansDif.Nbd;

namespace OrleansDif.Silo;

/// <summary>
/// The NBD front end inside a silo (<c>nbdPort</c> in the silo's config): serves every volume of the config, its page
/// calls in the silo's own process (the volumes' page caches are registered here, so the pages it activates, and
/// their flushers, stay on this silo). Starts once the silo is up.
/// </summary>
internal sealed class NbdHostedService(IGrainFactory grains, ClusterConfig config, SiloConfig me, LocalPageCaches caches, ILogger<NbdHostedService> logger)
    : IHostedService
{
    private NbdServer? _server;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var catalog = new VolumeCatalog(grains, config.Volumes.Select(v => v.ToVolumeConfig()));
        foreach (string volume in catalog.Names)
        {
            caches.Serve(volume);
        }
        _server = new NbdServer(catalog, new IPEndPoint(IPAddress.Parse(me.Address), me.NbdPort!.Value), logger);
        _server.Start();
        logger.LogWarning("{Silo} serves NBD on {Endpoint}: {Exports}", me.Name, _server.Endpoint, string.Join(", ", catalog.Names));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is not null)
        {
            logger.LogWarning("{Silo} NBD: {Stats}", me.Name, _server.Stats);
            await _server.DisposeAsync();
        }
    }
}
