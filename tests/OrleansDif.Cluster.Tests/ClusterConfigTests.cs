namespace OrleansDif.Cluster.Tests;

public sealed class ClusterConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("orleansdif-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string json)
    {
        string path = Path.Combine(_dir, $"c{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }

    private const string Good = """
    {
      "clusterId": "c", "serviceId": "s", "dataDirectory": "d",
      "silos": [
        { "name": "a", "address": "127.0.0.1", "siloPort": 11111, "gatewayPort": 30000 },
        { "address": "127.0.0.1", "siloPort": 11112, "gatewayPort": 30001 }
      ],
      "volumes": [ { "id": "v", "pages": 64, "policy": "bounce", "disks": 2 } ]
    }
    """;

    [Fact]
    public void LoadsTheRepositoryConfig()
    {
        string repo = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(repo, "OrleansDif.sln")))
        {
            repo = Path.GetDirectoryName(repo) ?? throw new InvalidOperationException("repository root not found");
        }
        ClusterConfig c = ClusterConfig.Load(Path.Combine(repo, "cluster-config", "local.json"), environment: false);
        Assert.Equal(3, c.Silos.Count);
        Assert.All(c.Silos, s => Assert.Equal("127.0.0.1", s.Address));
        Assert.NotEmpty(c.Volumes);
        Assert.False(c.UsesRedis);
        ClusterConfig redis = ClusterConfig.Load(Path.Combine(repo, "cluster-config", "redis.json"), environment: false);
        Assert.True(redis.UsesRedis);
        Assert.Equal("127.0.0.1", redis.RedisEndPoint.Address.ToString());
        Assert.All(redis.Silos, s => Assert.Equal("127.0.0.1", s.Address));
        // The two can run side by side: no port in common.
        Assert.Empty(c.Silos.SelectMany(s => new[] { s.SiloPort, s.GatewayPort })
            .Intersect(redis.Silos.SelectMany(s => new[] { s.SiloPort, s.GatewayPort })));
    }

    [Fact]
    public void LoadsValidatesAndResolvesPaths()
    {
        ClusterConfig c = ClusterConfig.Load(Write(Good), environment: false);
        Assert.Equal("c", c.ClusterId);
        Assert.Equal("silo1", c.Silos[1].Name);
        Assert.Equal(Path.Combine(_dir, "d"), c.DataPath);
        VolumeConfig v = c.Volumes[0].ToVolumeConfig();
        Assert.Equal(WritebackPolicy.Bounce, v.Policy);
        Assert.Equal(64, v.Pages);
    }

    [Fact]
    public void AnNbdPortIsOptionalAndSetByOverride()
    {
        ClusterConfig c = ClusterConfig.Load(Write(Good), ["--silos:0:nbdPort=10809"], environment: false);
        Assert.Equal(10809, c.Silos[0].NbdPort);
        Assert.Null(c.Silos[1].NbdPort);
    }

    [Fact]
    public void CommandLineOverridesWin()
    {
        ClusterConfig c = ClusterConfig.Load(Write(Good), ["--dataDirectory=/tmp/other", "--silos:1:gatewayPort=31000"], environment: false);
        Assert.Equal("/tmp/other", c.DataPath);
        Assert.Equal(31000, c.Silos[1].GatewayPort);
    }

    [Theory]
    [InlineData("\"siloPort\": 11112", "\"siloPort\": 70000", "silos[1].siloPort")]
    [InlineData("\"siloPort\": 11112", "\"siloPort\": 11111", "silos[1].siloPort")]
    [InlineData("\"gatewayPort\": 30001", "\"gatewayPort\": 30000", "silos[1].gatewayPort")]
    [InlineData("\"name\": \"a\", \"address\": \"127.0.0.1\"", "\"name\": \"a\", \"address\": \"localhost:1\"", "silos[0].address")]
    [InlineData("\"clusterId\": \"c\"", "\"clusterId\": \"\"", "clusterId")]
    [InlineData("\"disks\": 2", "\"disks\": 1", "disks")]
    [InlineData("\"policy\": \"bounce\"", "\"policy\": \"eventually\"", "policy")]
    [InlineData("\"policy\": \"bounce\"", "\"policy\": \"bounce\", \"guard\": \"crc32\"", "guard")]
    [InlineData("\"policy\": \"bounce\"", "\"policy\": \"bounce\", \"mirrors\": 4", "mirrors")]
    [InlineData("\"pages\": 64", "\"pages\": \"many\"", "volumes[0].pages")]
    [InlineData("\"pages\": 64", "\"pagez\": 64", "volumes[0].pagez")]
    [InlineData("\"clusterId\": \"c\"", "\"clusterId\": \"c\", \"faultInjection\": \"maybe\"", "faultInjection")]
    [InlineData("\"clusterId\": \"c\"", "\"clusterId\": \"c\", \"membership\": \"zookeeper\"", "membership")]
    [InlineData("\"clusterId\": \"c\"", "\"clusterId\": \"c\", \"membership\": \"redis\", \"redis\": \"localhost\"", "redis")]
    [InlineData("\"clusterId\": \"c\"", "\"clusterId\": \"c\", \"responseTimeoutMs\": 5", "responseTimeoutMs")]
    [InlineData("\"gatewayPort\": 30001", "\"gatewayPort\": 30001, \"nbdPort\": 70000", "silos[1].nbdPort")]
    [InlineData("\"gatewayPort\": 30001", "\"gatewayPort\": 30001, \"nbdPort\": 30000", "silos[1].nbdPort")]
    [InlineData("\"gatewayPort\": 30001", "\"gatewayPort\": 30001, \"nbdPort\": \"nbd\"", "silos[1].nbdPort")]
    public void BadFieldsAreNamed(string from, string to, string field)
    {
        var e = Assert.Throws<ConfigException>(() => ClusterConfig.Load(Write(Good.Replace(from, to)), environment: false));
        Assert.Contains(field, e.Message);
    }

    [Fact]
    public void MalformedMissingAndEmptyConfigs()
    {
        Assert.Contains("not valid JSON", Assert.Throws<ConfigException>(() => ClusterConfig.Load(Write("{ \"silos\": ["), environment: false)).Message);
        Assert.Contains("does not exist", Assert.Throws<ConfigException>(() => ClusterConfig.Load(Path.Combine(_dir, "none.json"))).Message);
        Assert.Contains("silos", Assert.Throws<ConfigException>(() => ClusterConfig.Load(Write("{}"), environment: false)).Message);
    }
}
