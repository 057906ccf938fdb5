using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;

namespace OrleansDif.Grains;

/// <summary>Where disk images and volume definitions live.</summary>
public sealed class StorageOptions
{
    public string DataDirectory { get; set; } = "data";

    /// <summary>Whether fault-injection requests are honoured; off unless the cluster config enables it.</summary>
    public bool FaultInjection { get; set; }

    /// <summary>Throws <see cref="StorageError.FaultInjectionDisabled"/> unless fault injection is on.</summary>
    public void RequireFaultInjection(FaultKind kind)
    {
        if (!FaultInjection)
        {
            throw new StorageException(StorageError.FaultInjectionDisabled,
                $"{FaultKinds.Name(kind)}: fault injection is disabled (set faultInjection: true in the cluster config)");
        }
        DifMetrics.FaultsInjected.Add(1, new KeyValuePair<string, object?>("kind", FaultKinds.Name(kind)));
    }

    public string VolumePath(string volume) => Path.Combine(DataDirectory, "volumes", volume + ".json");

    public string ImagePath(string volume, int disk, int copy = 0) =>
        Path.Combine(DataDirectory, copy == 0 ? $"{volume}.disk{disk}.img" : $"{volume}.disk{disk}.copy{copy}.img");
}

public static class ServiceCollectionExtensions
{
    /// <summary>Registers what the OrleansDif grains need on a silo.</summary>
    public static IServiceCollection AddOrleansDif(this IServiceCollection services, string dataDirectory, bool faultInjection = false)
    {
        Directory.CreateDirectory(Path.Combine(dataDirectory, "volumes"));
        services.Configure<StorageOptions>(o =>
        {
            o.DataDirectory = Path.GetFullPath(dataDirectory);
            o.FaultInjection = faultInjection;
        });
        services.AddSingleton<LocalPageCaches>();
        services.AddPlacementDirector<DiskSpreadPlacement, DiskSpreadPlacementDirector>();
        services.AddPlacementDirector<PageCachePlacement, PageCachePlacementDirector>();
        services.AddSingleton<OpenImages>();
        services.AddSingleton<AckTables>();
        services.AddSingleton<DirtyLogs>();
        string stateDirectory = Path.GetFullPath(dataDirectory);
        Orleans.Runtime.Hosting.StorageProviderExtensions.AddGrainStorage(services, FileGrainStorage.Name,
            (provider, _) => new FileGrainStorage(stateDirectory,
                Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetService<Microsoft.Extensions.Logging.ILoggerFactory>(provider)?.CreateLogger(typeof(FileGrainStorage).FullName!)));
        return services;
    }
}
