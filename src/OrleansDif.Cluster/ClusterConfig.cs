using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Configuration;

namespace OrleansDif.Cluster;

/// <summary>A malformed or missing cluster configuration; the message names the bad field.</summary>
public sealed class ConfigException(string message) : Exception(message);

/// <summary>One silo of the cluster.</summary>
public sealed class SiloConfig
{
    public string Name { get; set; } = "";
    public string Address { get; set; } = "127.0.0.1";
    public int SiloPort { get; set; }
    public int GatewayPort { get; set; }
    /// <summary>When set, this silo serves the volumes as NBD exports on its address and this port (pages it reads
    /// and writes for NBD clients are activated on it, as a host's page cache is on the host).</summary>
    public int? NbdPort { get; set; }
}

/// <summary>A volume as written in the cluster config.</summary>
public sealed class VolumeSection
{
    public string Id { get; set; } = "";
    public int Pages { get; set; } = 1024;
    public int SectorSize { get; set; } = 512;
    public int PiType { get; set; } = 1;
    public string Policy { get; set; } = "stable";
    public int Disks { get; set; } = 3;
    public int StripePages { get; set; } = 16;
    public int DirtyAgeMs { get; set; } = 500;
    public int DirtyThreshold { get; set; } = 256;
    public int LeaseMs { get; set; } = 10_000;
    public int UnstableDelayMs { get; set; } = 2;
    public bool TagsAtCopyIn { get; set; } = true;
    public bool VerifyOnDisk { get; set; } = true;
    public bool VersionTags { get; set; } = true;
    public bool StoreTags { get; set; } = true;
    public bool DirtyLog { get; set; }
    public int Mirrors { get; set; } = 1;
    public string Guard { get; set; } = "crc16";

    public VolumeConfig ToVolumeConfig() => new()
    {
        Id = Id,
        Pages = Pages,
        SectorSize = SectorSize,
        PiType = PiType,
        Policy = VolumeConfig.ParsePolicy(Policy),
        Disks = Disks,
        StripePages = StripePages,
        DirtyAgeMs = DirtyAgeMs,
        DirtyThreshold = DirtyThreshold,
        LeaseMs = LeaseMs,
        UnstableDelayMs = UnstableDelayMs,
        TagsAtCopyIn = TagsAtCopyIn,
        VerifyOnDisk = VerifyOnDisk,
        VersionTags = VersionTags,
        StoreTags = StoreTags,
        DirtyLog = DirtyLog,
        Mirrors = Mirrors,
        Guard = VolumeConfig.ParseGuard(Guard),
    };
}

/// <summary>
/// The cluster: silos (address, silo and gateway ports), cluster and service ids, the data directory of the
/// disk images, and the volumes. Loaded as .NET hosts load settings: the JSON file, then environment
/// variables prefixed <c>ORLEANSDIF_</c> (sections joined by <c>__</c>), then command-line overrides.
/// </summary>
public sealed class ClusterConfig
{
    public string ClusterId { get; set; } = "orleansdif";
    public string ServiceId { get; set; } = "orleansdif";
    public string DataDirectory { get; set; } = "data";
    public bool FaultInjection { get; set; }

    /// <summary>
    /// Where membership lives: "development" (Orleans' development clustering, held by silo 0: a single point of
    /// failure) or "redis" (a Redis server at <see cref="Redis"/>: any silo, the first included, may die).
    /// </summary>
    public string Membership { get; set; } = "development";

    /// <summary>host:port of the Redis server when <see cref="Membership"/> is "redis".</summary>
    public string Redis { get; set; } = "127.0.0.1:6379";

    public bool UsesRedis => Membership == "redis";

    /// <summary>
    /// How long a grain call waits for its response (silos and clients). A call in flight to a silo that was
    /// killed gets no answer: this bounds how long its caller waits before trying again.
    /// </summary>
    public int ResponseTimeoutMs { get; set; } = 30_000;

    /// <summary>The Redis endpoint, once validated.</summary>
    public IPEndPoint RedisEndPoint => IPEndPoint.Parse(Redis);

    public List<SiloConfig> Silos { get; set; } = [];

    /// <summary>TLS between silos and clients (<see cref="TlsSection"/>; off by default).</summary>
    public TlsSection Tls { get; set; } = new();
    public List<VolumeSection> Volumes { get; set; } = [];

    /// <summary>Where the file was loaded from; relative data directories are taken from there.</summary>
    public string BaseDirectory { get; internal set; } = ".";

    public string DataPath => Path.GetFullPath(Path.Combine(BaseDirectory, DataDirectory));

    public IEnumerable<IPEndPoint> Gateways => Silos.Select(s => new IPEndPoint(IPAddress.Parse(s.Address), s.GatewayPort));

    public static ClusterConfig Load(string path, IEnumerable<string>? overrides = null, bool environment = true)
    {
        if (!File.Exists(path))
        {
            throw new ConfigException($"cluster config '{path}' does not exist");
        }
        IConfigurationRoot root;
        try
        {
            var builder = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(path), optional: false, reloadOnChange: false);
            if (environment)
            {
                builder.AddEnvironmentVariables("ORLEANSDIF_");
            }
            if (overrides is not null)
            {
                builder.AddCommandLine(overrides.ToArray());
            }
            root = builder.Build();
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or JsonException)
        {
            throw new ConfigException($"cluster config '{path}' is not valid JSON: {e.InnerException?.Message ?? e.Message}");
        }
        var config = new ClusterConfig();
        BindStrict(root, config, "");
        config.BaseDirectory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        config.Validate();
        if (config.Tls.Required)
        {
            ClusterTls.LoadCertificate(config).Dispose(); // a missing file or a wrong password is a config error, said now
        }
        return config;
    }

    /// <summary>
    /// Binds configuration onto <paramref name="target"/>: every key must name a field, every value must convert.
    /// (The stock binder skips a list element it cannot bind and takes a misspelt key for absent.)
    /// </summary>
    private static void BindStrict(IConfiguration section, object target, string path)
    {
        var properties = target.GetType().GetProperties()
            .Where(p => p.SetMethod?.IsPublic == true)
            .ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        foreach (IConfigurationSection child in section.GetChildren())
        {
            if (!properties.TryGetValue(child.Key, out var property))
            {
                throw new ConfigException($"cluster config field '{path}{child.Key}': unknown field");
            }
            string field = path + char.ToLowerInvariant(property.Name[0]) + property.Name[1..];
            Type type = property.PropertyType;
            if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>))
            {
                var list = (System.Collections.IList)Activator.CreateInstance(type)!;
                var items = child.GetChildren().ToList();
                for (int i = 0; i < items.Count; i++)
                {
                    IConfigurationSection item = items.FirstOrDefault(x => x.Key == i.ToString(System.Globalization.CultureInfo.InvariantCulture))
                        ?? throw new ConfigException($"cluster config field '{field}': expected a list");
                    object element = Activator.CreateInstance(type.GetGenericArguments()[0])!;
                    BindStrict(item, element, $"{field}[{i}].");
                    list.Add(element);
                }
                property.SetValue(target, list);
                continue;
            }
            if (type == typeof(TlsSection))
            {
                var tls = new TlsSection();
                BindStrict(child, tls, field + ".");
                property.SetValue(target, tls);
                continue;
            }
            string? text = child.Value;
            if (text is null && child.GetChildren().Any())
            {
                throw new ConfigException($"cluster config field '{field}': expected a value, found an object");
            }
            object? value = type == typeof(string) ? text
                : (type == typeof(int) || type == typeof(int?)) && int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int n) ? n
                : type == typeof(bool) && bool.TryParse(text, out bool b) ? b
                : throw new ConfigException($"cluster config field '{field}': '{text}' is not a {(type == typeof(int) || type == typeof(int?) ? "whole number" : type == typeof(bool) ? "true/false" : type.Name)}");
            property.SetValue(target, value);
        }
    }

    /// <summary>Checks every field; throws <see cref="ConfigException"/> naming the first bad one.</summary>
    public void Validate()
    {
        static void Check(bool ok, string field, string message)
        {
            if (!ok)
            {
                throw new ConfigException($"cluster config field '{field}': {message}");
            }
        }
        Check(!string.IsNullOrWhiteSpace(ClusterId), "clusterId", "must not be empty");
        Check(!string.IsNullOrWhiteSpace(ServiceId), "serviceId", "must not be empty");
        Check(!string.IsNullOrWhiteSpace(DataDirectory), "dataDirectory", "must not be empty");
        Check(Silos.Count is >= 1 and <= 16, "silos", $"has {Silos.Count} entries, needs 1..16");
        Check(ResponseTimeoutMs is >= 100 and <= 600_000, "responseTimeoutMs", $"{ResponseTimeoutMs} must be 100..600000");
        Check(Membership is "development" or "redis", "membership", $"'{Membership}' is not one of: development, redis");
        Check(Tls.Mode is "off" or "required", "tls.mode", $"'{Tls.Mode}' is not one of: off, required");
        if (Tls.Required)
        {
            Check(!string.IsNullOrWhiteSpace(Tls.Certificate), "tls.certificate", "must name the cluster's PKCS#12 certificate when tls.mode is required");
        }
        if (UsesRedis)
        {
            Check(IPEndPoint.TryParse(Redis, out IPEndPoint? redis) && redis.Port != 0, "redis", $"'{Redis}' is not an address:port");
        }
        var ports = new HashSet<int>();
        for (int i = 0; i < Silos.Count; i++)
        {
            SiloConfig s = Silos[i];
            Check(IPAddress.TryParse(s.Address, out _), $"silos[{i}].address", $"'{s.Address}' is not an IP address");
            Check(s.SiloPort is > 0 and < 65536, $"silos[{i}].siloPort", $"{s.SiloPort} is not a port");
            Check(s.GatewayPort is > 0 and < 65536, $"silos[{i}].gatewayPort", $"{s.GatewayPort} is not a port");
            Check(ports.Add(s.SiloPort), $"silos[{i}].siloPort", $"{s.SiloPort} is used twice");
            Check(ports.Add(s.GatewayPort), $"silos[{i}].gatewayPort", $"{s.GatewayPort} is used twice");
            if (s.NbdPort is int nbd)
            {
                Check(nbd is > 0 and < 65536, $"silos[{i}].nbdPort", $"{nbd} is not a port");
                Check(ports.Add(nbd), $"silos[{i}].nbdPort", $"{nbd} is used twice");
            }
            if (string.IsNullOrWhiteSpace(s.Name))
            {
                s.Name = $"silo{i}";
            }
        }
        var ids = new HashSet<string>();
        for (int i = 0; i < Volumes.Count; i++)
        {
            VolumeSection v = Volumes[i];
            Check(ids.Add(v.Id), $"volumes[{i}].id", $"'{v.Id}' is used twice");
            try
            {
                v.ToVolumeConfig().Validate();
            }
            catch (StorageException e)
            {
                throw new ConfigException($"cluster config volumes[{i}]: {e.Message}");
            }
        }
    }
}
