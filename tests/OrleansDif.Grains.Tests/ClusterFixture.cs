using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Hosting;
using Orleans.TestingHost;
using OrleansDif.Grains;
using OrleansDif.Protection;

namespace OrleansDif.Grains.Tests;

/// <summary>
/// A shared three-silo TestingHost cluster with disk images in a temporary data directory. When the
/// collection is done the silos stop and every image written must pass an offline scrub.
/// </summary>
public class ClusterFixture : IAsyncLifetime
{
    public const int Silos = 3;

    public TestCluster Cluster { get; private set; } = null!;

    public string DataDirectory { get; } = Directory.CreateTempSubdirectory("orleansdif-grains-").FullName;

    public IGrainFactory Grains => Cluster.GrainFactory;

    public virtual async Task InitializeAsync()
    {
        Cluster = await StartAsync(DataDirectory);
    }

    public static async Task<TestCluster> StartAsync(string dataDirectory, bool faultInjection = true)
    {
        var builder = new TestClusterBuilder(Silos);
        builder.Options.ConfigureFileLogging = false;
        builder.Properties["OrleansDif:DataDirectory"] = dataDirectory;
        builder.Properties["OrleansDif:FaultInjection"] = faultInjection.ToString();
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        TestCluster cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    public virtual async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        var unclean = new List<string>();
        foreach (string image in Directory.EnumerateFiles(DataDirectory, "*.img"))
        {
            ScrubReport report = Scrubber.Scrub(image);
            if (!report.Clean)
            {
                unclean.Add($"{image}: {string.Join("; ", report.Errors.Take(5))}");
            }
        }
        if (unclean.Count > 0)
        {
            throw new InvalidOperationException("images failed scrub after the tests: " + string.Join(" | ", unclean));
        }
        Directory.Delete(DataDirectory, recursive: true);
    }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            string dir = siloBuilder.Configuration["OrleansDif:DataDirectory"]
                ?? throw new InvalidOperationException("no data directory");
            siloBuilder.Services.AddOrleansDif(dir, bool.Parse(siloBuilder.Configuration["OrleansDif:FaultInjection"] ?? "false"));
            siloBuilder.Services.AddLogging(l => l.SetMinimumLevel(LogLevel.Warning));
        }
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "cluster";
}
