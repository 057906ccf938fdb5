using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace OrleansDif.Cluster;

/// <summary>How to start one silo process: the program and the arguments before "silo ...".</summary>
public sealed record SiloCommand(string FileName, IReadOnlyList<string> PrefixArguments);

/// <summary>
/// The silos of a config as child processes on this machine: starts them, waits until each gateway accepts
/// connections, and stops them (SIGTERM, so each host shuts down cleanly; SIGKILL after a grace period).
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    /// <summary>Set on a silo started by a <see cref="LocalCluster"/>: the process id of its parent.</summary>
    public const string ParentPidVariable = "ODIF_SILO_PARENT_PID"; // outside the ORLEANSDIF_ configuration prefix

    private readonly List<Process> _processes = [];
    private readonly ClusterConfig _config;
    private readonly string _configPath;
    private readonly SiloCommand _command;
    private readonly TextWriter _log;
    private List<string> _overrides = [];
    private RedisServer? _redis;

    public LocalCluster(ClusterConfig config, string configPath, SiloCommand command, TextWriter log)
    {
        _config = config;
        _configPath = Path.GetFullPath(configPath);
        _command = command;
        _log = log;
    }

    public IReadOnlyList<Process> Processes => _processes;

    public async Task StartAsync(IEnumerable<string> overrides, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        for (int i = 0; i < _config.Silos.Count; i++)
        {
            SiloConfig s = _config.Silos[i];
            if (await PortOpenAsync(s.Address, s.GatewayPort) || await PortOpenAsync(s.Address, s.SiloPort))
            {
                throw new ConfigException($"port {s.SiloPort} or {s.GatewayPort} of {s.Name} is in use: is a cluster already running?");
            }
        }
        if (_config.UsesRedis)
        {
            _redis = await RedisServer.EnsureAsync(_config.RedisEndPoint, _log, cancellationToken);
        }
        _overrides = overrides.ToList();
        for (int i = 0; i < _config.Silos.Count; i++)
        {
            _processes.Add(StartSilo(i));
            if (i == 0)
            {
                // Development clustering: the primary must be up before the others join.
                await WaitForPortAsync(0, timeout, cancellationToken);
            }
        }
        for (int i = 1; i < _config.Silos.Count; i++)
        {
            await WaitForPortAsync(i, timeout, cancellationToken);
        }
    }

    private Process StartSilo(int i)
    {
        var psi = new ProcessStartInfo(_command.FileName)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        // The silo stops when this process tells it to (SIGTERM) or dies, not on the terminal's Ctrl-C:
        // this process then stops the silos one by one, the primary last.
        psi.Environment[ParentPidVariable] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (string a in _command.PrefixArguments)
        {
            psi.ArgumentList.Add(a);
        }
        foreach (string a in new[] { "silo", "--config", _configPath, "--silo", i.ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            psi.ArgumentList.Add(a);
        }
        foreach (string o in _overrides)
        {
            psi.ArgumentList.Add(o);
        }
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start silo {i}");
        string name = _config.Silos[i].Name;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (_log) { _log.WriteLine($"[{name}] {e.Data}"); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (_log) { _log.WriteLine($"[{name}] {e.Data}"); } } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Whether the config's membership survives silo 0 (Redis): only then may silo 0 be killed.</summary>
    public bool PrimaryMayDie => _config.UsesRedis;

    /// <summary>SIGKILL to silo <paramref name="index"/>, as a crash: no shutdown, no deactivation, memory gone.</summary>
    public async Task KillAsync(int index)
    {
        Process p = _processes[index];
        if (!p.HasExited)
        {
            p.Kill(entireProcessTree: true);
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await p.WaitForExitAsync(bound.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"silo {_config.Silos[index].Name} (pid {p.Id}) did not exit within 30 s of SIGKILL");
            }
        }
    }

    /// <summary>
    /// What a power loss takes besides the silos: the machine's page cache, and with it the acknowledged-version
    /// tables the silos map (they survive a silo's death, not the machine's). Call with every silo down.
    /// </summary>
    public void LosePageCache()
    {
        if (_processes.Any(p => !p.HasExited))
        {
            throw new InvalidOperationException("the page cache goes with the machine: every silo must be down first");
        }
        string tables = AckTableLayout.Directory(_config.DataPath);
        if (Directory.Exists(tables))
        {
            Directory.Delete(tables, recursive: true);
        }
    }

    /// <summary>Starts silo <paramref name="index"/> again (after <see cref="KillAsync"/>) and waits for its gateway.</summary>
    public async Task RestartAsync(int index, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        if (!_processes[index].HasExited)
        {
            throw new InvalidOperationException($"silo {_config.Silos[index].Name} is still running");
        }
        _processes[index].Dispose();
        _processes[index] = StartSilo(index);
        await WaitForPortAsync(index, timeout, cancellationToken);
    }

    private async Task WaitForPortAsync(int index, TimeSpan timeout, CancellationToken cancellationToken)
    {
        SiloConfig s = _config.Silos[index];
        var deadline = Stopwatch.StartNew();
        while (!await PortOpenAsync(s.Address, s.GatewayPort))
        {
            if (_processes[index].HasExited)
            {
                throw new InvalidOperationException($"silo {s.Name} exited with code {_processes[index].ExitCode} before it started (see its output above)");
            }
            if (deadline.Elapsed > timeout)
            {
                throw new TimeoutException($"silo {s.Name} did not open its gateway {s.Address}:{s.GatewayPort} within {timeout.TotalSeconds:F0} s");
            }
            await Task.Delay(200, cancellationToken);
        }
    }

    /// <summary>Whether something accepts connections at address:port (one try, at most a second).</summary>
    internal static async Task<bool> PortOpenAsync(string address, int port, CancellationToken cancellationToken = default)
    {
        using var client = new TcpClient();
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(TimeSpan.FromSeconds(1));
            await client.ConnectAsync(address, port, cts.Token);
            return true;
        }
        catch (Exception e) when (e is SocketException || e is OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>SIGTERM to every silo (the primary last), then waits; SIGKILL for any still running after the grace period.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        for (int i = _processes.Count - 1; i >= 0; i--)
        {
            Process p = _processes[i];
            if (!p.HasExited)
            {
                _ = Terminate(p.Id);
                using var cts = new CancellationTokenSource(grace);
                try
                {
                    await p.WaitForExitAsync(cts.Token);
                }
                catch (OperationCanceledException)
                {
                    p.Kill(entireProcessTree: true);
                    using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    try
                    {
                        await p.WaitForExitAsync(bound.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        lock (_log)
                        {
                            _log.WriteLine($"silo pid {p.Id} did not exit within 30 s of SIGKILL; left behind");
                        }
                    }
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(20));
        foreach (Process p in _processes)
        {
            p.Dispose();
        }
        _processes.Clear();
        if (_redis is not null)
        {
            await _redis.DisposeAsync();
            _redis = null;
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int signal);

    private static int Terminate(int pid) => OperatingSystem.IsWindows() ? -1 : SysKill(pid, 15);
}
