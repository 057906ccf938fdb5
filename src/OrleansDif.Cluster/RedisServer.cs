using System.Diagnostics;
using System.Net;

namespace OrleansDif.Cluster;

/// <summary>
/// The Redis server that holds membership for a config with <c>membership: "redis"</c>. When nothing listens at
/// the configured endpoint, one is started on it (bound to that address only, no persistence, so each start has
/// an empty membership table), installing the Debian package first where it is missing and apt-get can.
/// When something already listens there, it is used as it is and left running.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private readonly Process? _process;

    private RedisServer(IPEndPoint endPoint, Process? process)
    {
        EndPoint = endPoint;
        _process = process;
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>Whether this object started the server (and stops it when disposed).</summary>
    public bool Started => _process is not null;

    public static async Task<RedisServer> EnsureAsync(IPEndPoint endPoint, TextWriter log, CancellationToken cancellationToken = default)
    {
        if (await PortOpenAsync(endPoint, cancellationToken))
        {
            return new RedisServer(endPoint, null);
        }
        string binary = Find() ?? await InstallAsync(log, cancellationToken)
            ?? throw new ConfigException($"membership is redis but nothing listens at {endPoint} and redis-server is not installed (apt-get install redis-server)");
        var psi = new ProcessStartInfo(binary)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string a in new[] { "--bind", endPoint.Address.ToString(), "--port", endPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning" })
        {
            psi.ArgumentList.Add(a);
        }
        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start redis-server");
        process.OutputDataReceived += (_, e) => { if (e.Data is { Length: > 0 }) { lock (log) { log.WriteLine($"[redis] {e.Data}"); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 }) { lock (log) { log.WriteLine($"[redis] {e.Data}"); } } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var waited = Stopwatch.StartNew();
        while (!await PortOpenAsync(endPoint, cancellationToken))
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"redis-server exited with code {process.ExitCode} before it listened at {endPoint}");
            }
            if (waited.Elapsed > TimeSpan.FromSeconds(20))
            {
                process.Kill();
                throw new TimeoutException($"redis-server did not listen at {endPoint} within 20 s");
            }
            await Task.Delay(50, cancellationToken);
        }
        return new RedisServer(endPoint, process);
    }

    private static string? Find()
    {
        var folders = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/bin", "/usr/sbin", "/usr/local/bin"]);
        return folders.Select(f => Path.Combine(f, "redis-server")).FirstOrDefault(File.Exists);
    }

    /// <summary>apt-get install redis-server where apt-get exists and this process may use it.</summary>
    private static async Task<string?> InstallAsync(TextWriter log, CancellationToken cancellationToken)
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/usr/bin/apt-get") || Environment.UserName != "root")
        {
            return null;
        }
        lock (log)
        {
            log.WriteLine("redis-server is missing: installing it with apt-get");
        }
        foreach (string[] args in new[] { new[] { "install", "-y", "-qq", "redis-server" }, ["update", "-qq"], ["install", "-y", "-qq", "redis-server"] })
        {
            if (Find() is not null)
            {
                break;
            }
            var psi = new ProcessStartInfo("/usr/bin/apt-get") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            psi.Environment["DEBIAN_FRONTEND"] = "noninteractive";
            foreach (string a in args)
            {
                psi.ArgumentList.Add(a);
            }
            using Process p = Process.Start(psi)!;
            _ = p.StandardOutput.ReadToEndAsync(cancellationToken);
            _ = p.StandardError.ReadToEndAsync(cancellationToken);
            // A package mirror that does not answer must not hold the start for ever: five minutes, then give up.
            using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            bound.CancelAfter(TimeSpan.FromMinutes(5));
            try
            {
                await p.WaitForExitAsync(bound.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                p.Kill(entireProcessTree: true);
                lock (log)
                {
                    log.WriteLine($"apt-get {string.Join(' ', args)} did not finish within 5 minutes: stopped");
                }
                break;
            }
        }
        return Find();
    }

    private static Task<bool> PortOpenAsync(IPEndPoint endPoint, CancellationToken cancellationToken) =>
        LocalCluster.PortOpenAsync(endPoint.Address.ToString(), endPoint.Port, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
        _process?.Dispose();
    }
}
