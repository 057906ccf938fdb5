using System.Text.Json;

namespace OrleansDif.Cli.Tests;

/// <summary>
/// <c>orleansdif load --local --chaos kill-silo</c> on a cluster whose membership is in Redis (a redis-server of
/// its own, started by the command): silos, the first included, are SIGKILLed and restarted while writers run;
/// every write an acknowledged fsync covered reads back exactly, and the unsynced ones lost are counted apart.
/// </summary>
[Collection(RealSilos.Name)]
public sealed class ChaosEndToEndTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("orleansdif-chaos-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteConfig(int pages = 64, int mirrors = 1)
    {
        int[] p = LoadEndToEndTests.FreePorts(7);
        string path = Path.Combine(_dir, "cluster.json");
        File.WriteAllText(path, $$"""
        {
          "clusterId": "chaos-{{Guid.NewGuid():N}}",
          "serviceId": "orleansdif-chaos",
          "dataDirectory": "data",
          "membership": "redis",
          "redis": "127.0.0.1:{{p[6]}}",
          "responseTimeoutMs": 5000,
          "silos": [
            { "name": "s0", "address": "127.0.0.1", "siloPort": {{p[0]}}, "gatewayPort": {{p[1]}} },
            { "name": "s1", "address": "127.0.0.1", "siloPort": {{p[2]}}, "gatewayPort": {{p[3]}} },
            { "name": "s2", "address": "127.0.0.1", "siloPort": {{p[4]}}, "gatewayPort": {{p[5]}} }
          ],
          "volumes": [
            { "id": "chaos", "pages": {{pages}}, "disks": 3, "stripePages": 4, "dirtyAgeMs": 100, "leaseMs": 2000, "dirtyLog": true, "mirrors": {{mirrors}} }
          ]
        }
        """);
        return path;
    }

    /// <summary>A chaos load run on the Redis config, paced by acknowledged writes: its report, and what it printed.</summary>
    private async Task<(JsonElement Report, string Stdout)> RunChaosAsync(string kind, int kills)
    {
        string config = WriteConfig();
        string json = Path.Combine(_dir, $"{kind}.json");
        var (exit, stdout, stderr) = await CliRunner.RunAsync("load", "--local", "--config", config, "--chaos", kind,
            "--chaos-every", "300writes", "--chaos-kills", kills.ToString(), "--duration", "3s", "--pages", "64", "--writers", "6", "--fsync-every", "20", "--json", json);
        string siloLog = Path.Combine(_dir, "data", "silos.log");
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}\nsilo output:\n{(File.Exists(siloLog) ? string.Join('\n', File.ReadLines(siloLog).TakeLast(80)) : "(none)")}");
        using JsonDocument report = JsonDocument.Parse(File.ReadAllText(json));
        return (report.RootElement.Clone(), stdout);
    }

    [Fact]
    public async Task EverySiloIsKilledInTurnAndNoSyncedWriteIsLost()
    {
        var (report, stdout) = await RunChaosAsync("kill-silo", kills: 3);
        JsonElement chaos = report.GetProperty("chaos");
        Assert.Equal(3, chaos.GetProperty("kills").GetInt32());
        Assert.Equal(3, chaos.GetProperty("restarts").GetInt32());
        Assert.Equal(0, chaos.GetProperty("syncedLost").GetInt64());
        // Every page reported lost was lost (or its last write is in doubt to its writer): the table, read by the
        // next activation, says what a dead one acknowledged.
        Assert.True(chaos.GetProperty("falseLossReports").GetInt64() == 0, chaos.ToString());
        // Writes lost with a silo were reported: some fsync failed naming their pages.
        if (chaos.GetProperty("unsyncedLost").GetInt64() > 0)
        {
            Assert.True(chaos.GetProperty("fsyncLossReports").GetInt64() > 0);
        }
        // Shuffled rounds: three kills are the three silos, silo 0 (which Redis membership survives) among them.
        string[] killed = [.. chaos.GetProperty("killed").EnumerateArray().Select(k => k.GetString()!.Split('@')[0]).Order()];
        Assert.Equal(["silo0", "silo1", "silo2"], killed);
        JsonElement verify = report.GetProperty("verify");
        Assert.Equal(0, verify.GetProperty("mismatched").GetInt32());
        Assert.Equal(0, verify.GetProperty("lost").GetInt32());
        Assert.True(report.GetProperty("passed").GetBoolean());
        // The run went on after the kills: writes were acknowledged after the last restart (counted, not timed).
        Assert.True(chaos.GetProperty("writesAfterLastRestart").GetInt64() >= 75, chaos.ToString());
        Assert.Contains("chaos: 3 kills", stdout);
    }

    [Fact]
    public async Task PowerLossKillsEverySiloAtOnceAndNoSyncedWriteIsLost()
    {
        var (report, stdout) = await RunChaosAsync("power-loss", kills: 2);
        JsonElement chaos = report.GetProperty("chaos");
        Assert.Equal("power-loss", chaos.GetProperty("kind").GetString());
        Assert.Equal(2, chaos.GetProperty("powerLosses").GetInt32());
        Assert.Equal(2, chaos.GetProperty("restarts").GetInt32());
        Assert.Equal(0, chaos.GetProperty("syncedLost").GetInt64());   // disks lost what was not flushed, and only that
        // The dirty log outlived the power: every page reported lost was lost (or its last write is in doubt).
        Assert.True(chaos.GetProperty("falseLossReports").GetInt64() == 0, chaos.ToString());
        Assert.All(chaos.GetProperty("killed").EnumerateArray(), k => Assert.StartsWith("all@", k.GetString()));
        JsonElement verify = report.GetProperty("verify");
        Assert.Equal(0, verify.GetProperty("mismatched").GetInt32());
        Assert.Equal(0, verify.GetProperty("lost").GetInt32());
        Assert.True(report.GetProperty("passed").GetBoolean());
        Assert.True(chaos.GetProperty("writesAfterLastRestart").GetInt64() >= 75, chaos.ToString());
        Assert.Contains("2 power losses", stdout);
    }

    [Fact]
    public async Task OnAMirroredVolumeRotIsRepairedWhileSilosAreKilled()
    {
        // 32 pages past the writers' range, written and synced before the run, take the rot: one copy each.
        string config = WriteConfig(pages: 96, mirrors: 2);
        string json = Path.Combine(_dir, "mirrored.json");
        var (exit, stdout, stderr) = await CliRunner.RunAsync("load", "--local", "--config", config, "--set", "faultInjection=true",
            "--chaos", "kill-silo", "--chaos-every", "300writes", "--chaos-kills", "2", "--duration", "3s", "--pages", "64",
            "--writers", "6", "--fsync-every", "20", "--inject", "media-bitrot", "--inject-every", "15", "--json", json);
        string siloLog = Path.Combine(_dir, "data", "silos.log");
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}\nsilo output:\n{(File.Exists(siloLog) ? string.Join('\n', File.ReadLines(siloLog).TakeLast(80)) : "(none)")}");
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(json));
        JsonElement report = doc.RootElement;
        Assert.Equal(2, report.GetProperty("chaos").GetProperty("kills").GetInt32());
        Assert.Equal(0, report.GetProperty("chaos").GetProperty("syncedLost").GetInt64());
        JsonElement rot = report.GetProperty("faults").GetProperty("media-bitrot");
        int injected = rot.GetProperty("injected").GetInt32();
        Assert.True(injected > 0, rot.ToString());
        Assert.True(rot.GetProperty("silent").GetInt32() == 0, rot.ToString());
        // Repaired, or (rarely, under the churn of a kill) the sector written again before anything read it: never silent.
        Assert.True(rot.GetProperty("repaired").GetInt32() == rot.GetProperty("detected").GetInt32(), rot.ToString());
        Assert.True(rot.GetProperty("repaired").GetInt32() + rot.GetProperty("masked").GetInt32() == injected, rot.ToString());
        Assert.True(rot.GetProperty("repaired").GetInt32() >= injected / 2, rot.ToString());
        Assert.Equal(0, report.GetProperty("mirror").GetProperty("unrepairable").GetInt64());
        Assert.True(report.GetProperty("passed").GetBoolean());
    }

    [Fact]
    public async Task PowerLossNeedsMembershipThatOutlivesEverySilo()
    {
        string config = WriteConfig();
        string text = File.ReadAllText(config);
        File.WriteAllText(config, text.Replace("\"membership\": \"redis\"", "\"membership\": \"development\""));
        var (exit, stdout, stderr) = await CliRunner.RunAsync("load", "--local", "--config", config, "--chaos", "power-loss", "--duration", "2s", "--pages", "64");
        Assert.True(exit == 2, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Contains("--chaos power-loss: needs membership that survives every silo", stdout + stderr);
    }

    [Fact]
    public async Task ChaosNeedsALocalCluster()
    {
        string config = WriteConfig();
        var (exit, _, stderr) = await CliRunner.RunAsync("load", "--config", config, "--chaos", "kill-silo", "--duration", "1s");
        Assert.Equal(2, exit);
        Assert.Contains("--chaos kill-silo needs --local", stderr);
        (exit, _, stderr) = await CliRunner.RunAsync("load", "--local", "--config", config, "--chaos", "kill-node", "--duration", "1s");
        Assert.Equal(2, exit);
        Assert.Contains("unknown kind 'kill-node'", stderr);
    }
}
