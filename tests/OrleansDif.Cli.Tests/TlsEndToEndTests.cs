using OrleansDif.Cluster;
using OrleansDif.LoadGenerator;

namespace OrleansDif.Cli.Tests;

/// <summary>
/// Mutual TLS on real silo processes: a cluster whose config requires TLS serves a load run, and refuses a client
/// without its certificate and a client with another one, saying why.
/// </summary>
[Collection(RealSilos.Name)]
public sealed class TlsEndToEndTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("orleansdif-tls-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteConfig(string name, string? certificate)
    {
        int[] p = LoadEndToEndTests.FreePorts(6);
        string tls = certificate is null ? "" : $$"""
          "tls": { "mode": "required", "certificate": "{{certificate}}" },
        """;
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, $$"""
        {
          "clusterId": "tls-{{Guid.NewGuid():N}}",
          "serviceId": "orleansdif-tls",
          "dataDirectory": "data-{{Path.GetFileNameWithoutExtension(name)}}",
          {{tls}}
          "silos": [
            { "name": "s0", "address": "127.0.0.1", "siloPort": {{p[0]}}, "gatewayPort": {{p[1]}} },
            { "name": "s1", "address": "127.0.0.1", "siloPort": {{p[2]}}, "gatewayPort": {{p[3]}} },
            { "name": "s2", "address": "127.0.0.1", "siloPort": {{p[4]}}, "gatewayPort": {{p[5]}} }
          ],
          "volumes": [ { "id": "tls", "pages": 16, "disks": 2, "stripePages": 4, "dirtyAgeMs": 20 } ]
        }
        """);
        return path;
    }

    /// <summary>The same config with another tls section (or none): a client of the same cluster, differently equipped.</summary>
    private string ClientConfig(string clusterConfig, string name, string? certificate)
    {
        string text = File.ReadAllText(clusterConfig);
        int start = text.IndexOf("\"tls\"", StringComparison.Ordinal);
        int end = text.IndexOf('}', start) + 2;
        string tls = certificate is null ? "" : $"\"tls\": {{ \"mode\": \"required\", \"certificate\": \"{certificate}\" }},";
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text[..start] + tls + text[end..]);
        return path;
    }

    [Fact]
    public async Task CertMakesACertificateAndRefusesBadInput()
    {
        string path = Path.Combine(_dir, "c.pfx");
        var (exit, stdout, stderr) = await CliRunner.RunAsync("cert", "--out", path, "--subject", "CN=test-cluster", "--days", "30");
        Assert.True(exit == 0, stderr);
        Assert.Contains("CN=test-cluster", stdout);
        Assert.True(File.Exists(path));
        (exit, _, stderr) = await CliRunner.RunAsync("cert", "--out", path);
        Assert.Equal(2, exit);
        Assert.Contains("exists (--force", stderr);
        (exit, _, stderr) = await CliRunner.RunAsync("cert", "--out", Path.Combine(_dir, "d.pfx"), "--days", "0");
        Assert.Equal(2, exit);
        Assert.Contains("days must be 1..3650", stderr);
        // A config naming a certificate that is not there, or that its password does not open: a usage error naming it.
        string config = WriteConfig("missing.json", "nothing.pfx");
        (exit, _, stderr) = await CliRunner.RunAsync("load", "--local", "--config", config, "--duration", "1s");
        Assert.Equal(2, exit);
        Assert.Contains("tls.certificate", stderr);
        Assert.Contains("orleansdif cert --out", stderr);
        (exit, _, _) = await CliRunner.RunAsync("cert", "--out", Path.Combine(_dir, "p.pfx"), "--password", "right");
        Assert.Equal(0, exit);
        string wrong = WriteConfig("wrong-password.json", "p.pfx");
        File.WriteAllText(wrong, File.ReadAllText(wrong).Replace("\"p.pfx\"", "\"p.pfx\", \"password\": \"wrong\""));
        (exit, _, stderr) = await CliRunner.RunAsync("load", "--local", "--config", wrong, "--duration", "1s");
        Assert.Equal(2, exit);
        Assert.Contains("password", stderr);
    }

    [Fact]
    public async Task ATlsClusterServesALoadRun()
    {
        Assert.Equal(0, (await CliRunner.RunAsync("cert", "--out", Path.Combine(_dir, "cluster.pfx"))).Exit);
        string config = WriteConfig("cluster.json", "cluster.pfx");
        var (exit, stdout, stderr) = await CliRunner.RunAsync("load", "--local", "--config", config, "--duration", "3s", "--pages", "16", "--writers", "4", "--fsync-every", "20");
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Contains("PASSED", stdout);
    }

    /// <summary>The cluster's certificate and a stranger's, and the cluster of <paramref name="path"/> started with the first.</summary>
    private async Task<LocalCluster> StartTlsClusterAsync(string path)
    {
        Assert.Equal(0, (await CliRunner.RunAsync("cert", "--out", Path.Combine(_dir, "cluster.pfx"))).Exit);
        Assert.Equal(0, (await CliRunner.RunAsync("cert", "--out", Path.Combine(_dir, "stranger.pfx"), "--subject", "CN=stranger")).Exit);
        var cluster = new LocalCluster(ClusterConfig.Load(path), path, CliApp.ThisTool(), new StringWriter());
        try
        {
            await cluster.StartAsync([], TimeSpan.FromSeconds(60));
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    [Fact]
    public async Task ATlsClusterRefusesAClientWithoutItsCertificateOrWithAnother()
    {
        string path = WriteConfig("cluster.json", "cluster.pfx");
        await using LocalCluster cluster = await StartTlsClusterAsync(path);

        // The cluster's own certificate: admitted (the control).
        await using (ClusterClient member = await ClusterClient.ConnectAsync(ClusterConfig.Load(path), 3, TimeSpan.FromSeconds(60)))
        {
            Assert.Equal(3, await member.ActiveSilosAsync());
        }
        // No certificate (plain TCP), and another certificate: refused, with a message that says what to check.
        var plain = await Assert.ThrowsAsync<ConnectionException>(() =>
            ClusterClient.ConnectAsync(ClusterConfig.Load(ClientConfig(path, "plain.json", null)), 3, TimeSpan.FromSeconds(5)));
        Assert.Contains("if the cluster requires TLS", plain.Message);
        var stranger = await Assert.ThrowsAsync<ConnectionException>(() =>
            ClusterClient.ConnectAsync(ClusterConfig.Load(ClientConfig(path, "stranger.json", "stranger.pfx")), 3, TimeSpan.FromSeconds(5)));
        // Each side checks the other: the stranger's client refuses the silos' certificate (and they would refuse its).
        Assert.Contains("not this cluster's certificate", stranger.Message);
        Assert.Contains("CN=stranger", stranger.Message);
    }

    [Fact]
    public async Task ASiloWithAnotherCertificateCannotJoin()
    {
        string path = WriteConfig("cluster.json", "cluster.pfx");
        await using LocalCluster cluster = await StartTlsClusterAsync(path);

        // The same cluster with a fourth silo that holds another certificate.
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
        int[] p = LoadEndToEndTests.FreePorts(2);
        json["silos"]!.AsArray().Add(new System.Text.Json.Nodes.JsonObject
        {
            ["name"] = "intruder", ["address"] = "127.0.0.1", ["siloPort"] = p[0], ["gatewayPort"] = p[1],
        });
        json["tls"]!["certificate"] = "stranger.pfx";
        json["dataDirectory"] = "data-intruder";
        string intruderConfig = Path.Combine(_dir, "intruder.json");
        File.WriteAllText(intruderConfig, json.ToJsonString());

        SiloCommand tool = CliApp.ThisTool();
        var psi = new System.Diagnostics.ProcessStartInfo(tool.FileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in tool.PrefixArguments.Concat(["silo", "--config", intruderConfig, "--silo", "3"]))
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment[LocalCluster.ParentPidVariable] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var refused = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        void Line(string? line)
        {
            if (line is null)
            {
                return;
            }
            output.Enqueue(line);
            if (line.Contains("TLS: refused", StringComparison.Ordinal))
            {
                refused.TrySetResult(line);
            }
        }
        using var intruder = System.Diagnostics.Process.Start(psi)!;
        intruder.OutputDataReceived += (_, e) => Line(e.Data);
        intruder.ErrorDataReceived += (_, e) => Line(e.Data);
        intruder.BeginOutputReadLine();
        intruder.BeginErrorReadLine();
        try
        {
            // The event, not a clock: the intruder refuses the members' certificate (and they refuse its). The bound
            // only keeps a broken build from waiting for ever.
            await Task.WhenAny(refused.Task, intruder.WaitForExitAsync(), Task.Delay(TimeSpan.FromMinutes(2)));
            Assert.True(refused.Task.IsCompleted, "the intruder silo never reported a refused connection:\n" + string.Join("\n", output.TakeLast(40)));
            Assert.Contains("not this cluster's certificate", await refused.Task);
            await using ClusterClient member = await ClusterClient.ConnectAsync(ClusterConfig.Load(path), 3, TimeSpan.FromSeconds(60));
            Assert.Equal(3, await member.ActiveSilosAsync()); // the intruder is not a member
        }
        finally
        {
            if (!intruder.HasExited)
            {
                intruder.Kill(entireProcessTree: true);
                await intruder.WaitForExitAsync();
            }
        }
    }
}
