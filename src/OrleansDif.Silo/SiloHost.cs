using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using OrleansDif.Cluster;
using OrleansDif.Grains;

namespace OrleansDif.Silo;

/// <summary>Builds the Generic Host of one silo of a <see cref="ClusterConfig"/>.</summary>
public static class SiloHost
{
    /// <summary>
    /// Silo <paramref name="index"/> of the config. Membership is Orleans' development clustering with silo 0
    /// as the primary (simple, and a single point of failure: silo 0 must be up for silos to join and for the
    /// cluster to go on), or a Redis server (membership outlives any silo).
    /// </summary>
    public static IHost Build(ClusterConfig config, int index, LogLevel logLevel = LogLevel.Warning)
    {
        if (index < 0 || index >= config.Silos.Count)
        {
            throw new ConfigException($"silo {index} is not in the config (it has {config.Silos.Count})");
        }
        SiloConfig me = config.Silos[index];
        SiloConfig primary = config.Silos[0];
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            DisableDefaults = true,
            ApplicationName = "orleansdif-" + me.Name,
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        builder.Logging.SetMinimumLevel(logLevel);
        // Orleans warns at every start that server GC is off; with several silos sharing a few cores that is the intent.
        builder.Logging.AddFilter("Orleans.Runtime.Silo", level => level >= LogLevel.Error || level >= logLevel && logLevel < LogLevel.Warning);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
        builder.UseOrleans(silo =>
        {
            silo.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = config.ClusterId;
                o.ServiceId = config.ServiceId;
            });
            var address = IPAddress.Parse(me.Address);
            silo.ConfigureEndpoints(address, me.SiloPort, me.GatewayPort, listenOnAnyHostAddress: false);
            if (config.UsesRedis)
            {
                silo.UseRedisClustering(config.Redis);
            }
            else
            {
                silo.UseDevelopmentClustering(new IPEndPoint(IPAddress.Parse(primary.Address), primary.SiloPort));
            }
            if (config.Tls.Required)
            {
                // Mutual TLS: every silo and client presents the cluster's certificate, and only that one is accepted.
                var certificate = ClusterTls.LoadCertificate(config);
                silo.UseTls(certificate, o => ClusterTls.Configure(o, certificate, refused => Console.Error.WriteLine(refused)));
            }
            silo.Services.AddOrleansDif(config.DataPath, config.FaultInjection);
            silo.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromMilliseconds(config.ResponseTimeoutMs));
        });
        if (me.NbdPort is not null)
        {
            // Registered after Orleans: hosted services start in order, so the silo is up when NBD clients come.
            builder.Services.AddHostedService(sp => new NbdHostedService(sp.GetRequiredService<IGrainFactory>(), config, me,
                sp.GetRequiredService<OrleansDif.Grains.LocalPageCaches>(), sp.GetRequiredService<ILogger<NbdHostedService>>()));
        }
        return builder.Build();
    }
}
