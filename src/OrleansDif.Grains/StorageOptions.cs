using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;

namespace OrleansDif.Grains;

/// <summary>Where disk images and volume definitions live.</summary>
public sealed class StorageOptions
{
    public string DataDirectory { get; set; } = "data";

    public string VolumePath(string volume) => Path.Combine(DataDirectory, "volumes", volume + ".json");

    public string ImagePath(string volume, int disk) => Path.Combine(DataDirectory, $"{volume}.disk{disk}.img");
}

public static class ServiceCollectionExtensions
{
    /// <summary>Registers what the OrleansDif grains need on a silo.</summary>
    public static IServiceCollection AddOrleansDif(this IServiceCollection services, string dataDirectory)
    {
        Directory.CreateDirectory(Path.Combine(dataDirectory, "volumes"));
        services.Configure<StorageOptions>(o => o.DataDirectory = Path.GetFullPath(dataDirectory));
        services.AddPlacementDirector<DiskSpreadPlacement, DiskSpreadPlacementDirector>();
        return services;
    }
}
