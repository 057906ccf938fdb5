using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Hosting;
using Orleans.TestingHost;
using OrleansDif.Grains;
using OrleansDif.Protection;

namespace OrleansDif.Nbd.Tests.Tools;

/// <summary>
/// A three-silo TestingHost cluster and an NBD server over its volumes (one per test, so tests do not share data).
/// When the collection is done the silos stop and every disk image written must pass an offline scrub.
/// </summary>
public sealed class NbdClusterFixture : IAsyncLifetime
{
    public const int Pages = 256;

    public TestCluster Cluster { get; private set; } = null!;
    public NbdServer Server { get; private set; } = null!;
    public VolumeCatalog Catalog { get; private set; } = null!;
    public string DataDirectory { get; } = Directory.CreateTempSubdirectory("orleansdif-nbd-").FullName;
    public IGrainFactory Grains => Cluster.GrainFactory;

    public static readonly string[] Volumes = ["info", "qemu", "convert", "fio", "eio", "multi", "zeros"];

    public VolumeConfig Volume(string id) => new()
    {
        Id = id,
        Pages = Pages,
        Policy = WritebackPolicy.Stable,
        DirtyAgeMs = 200,
    };

    public string Uri(string export) => $"nbd://127.0.0.1:{Server.Endpoint.Port}/{export}";

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(3);
        builder.Options.ConfigureFileLogging = false;
        builder.Properties["OrleansDif:DataDirectory"] = DataDirectory;
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        Cluster = builder.Build();
        await Cluster.DeployAsync();
        Catalog = new VolumeCatalog(Cluster.GrainFactory, Volumes.Select(Volume));
        Server = new NbdServer(Catalog, new IPEndPoint(IPAddress.Loopback, 0));
        Server.Start();
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        var unclean = Directory.EnumerateFiles(DataDirectory, "*.img")
            .Select(image => (image, report: Scrubber.Scrub(image)))
            .Where(x => !x.report.Clean)
            .Select(x => $"{Path.GetFileName(x.image)}: {string.Join("; ", x.report.Errors.Take(5))}")
            .ToList();
        if (unclean.Count > 0)
        {
            throw new InvalidOperationException("images failed scrub after the NBD tests: " + string.Join(" | ", unclean));
        }
        Directory.Delete(DataDirectory, recursive: true);
    }

    /// <summary>Runs a block-storage tool (installed by .ci/run from Debian); its exit code and output.</summary>
    public static async Task<(int Code, string Output)> RunAsync(string tool, params string[] args)
    {
        string? path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);
        Assert.True(path is not null, $"{tool} is not installed: apt-get install fio libnbd-bin qemu-utils (.ci/run does)");
        var psi = new ProcessStartInfo(path!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using Process p = Process.Start(psi)!;
        Task<string> output = p.StandardOutput.ReadToEndAsync();
        Task<string> error = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await p.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish in 2 minutes");
        }
        return (p.ExitCode, await output + await error);
    }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            string dir = siloBuilder.Configuration["OrleansDif:DataDirectory"] ?? throw new InvalidOperationException("no data directory");
            siloBuilder.Services.AddOrleansDif(dir, faultInjection: true);
            siloBuilder.Services.AddLogging(l => l.SetMinimumLevel(LogLevel.Warning));
        }
    }
}

[CollectionDefinition(Name)]
public sealed class NbdClusterCollection : ICollectionFixture<NbdClusterFixture>
{
    public const string Name = "nbd cluster";
}
