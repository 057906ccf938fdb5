namespace OrleansDif.Nbd;

/// <summary>What a server did, counted: connections, requests by command, bytes, and every error reply by cause.</summary>
public sealed class NbdStats
{
    private long _connections, _protocolViolations, _reads, _writes, _flushes, _zeroes, _bytesRead, _bytesWritten;
    private long _ioErrors, _invalid, _otherErrors, _fua;

    public long Connections => Interlocked.Read(ref _connections);
    /// <summary>Connections closed because the client broke the protocol (handshake or request).</summary>
    public long ProtocolViolations => Interlocked.Read(ref _protocolViolations);
    public long Reads => Interlocked.Read(ref _reads);
    public long Writes => Interlocked.Read(ref _writes);
    public long Flushes => Interlocked.Read(ref _flushes);
    public long Zeroes => Interlocked.Read(ref _zeroes);
    public long ForceUnitAccess => Interlocked.Read(ref _fua);
    public long BytesRead => Interlocked.Read(ref _bytesRead);
    public long BytesWritten => Interlocked.Read(ref _bytesWritten);
    /// <summary>EIO replies: integrity failures, losses reported by fsync, device errors. Each is also logged.</summary>
    public long IoErrors => Interlocked.Read(ref _ioErrors);
    /// <summary>EINVAL replies: requests out of range, empty, too large, or of a command not offered.</summary>
    public long InvalidRequests => Interlocked.Read(ref _invalid);
    public long OtherErrors => Interlocked.Read(ref _otherErrors);

    internal void Connected() => Interlocked.Increment(ref _connections);
    internal void ProtocolViolation() => Interlocked.Increment(ref _protocolViolations);

    private readonly LatencyRing[] _latency = [new(), new(), new(), new()]; // read, write, flush, zero/trim

    /// <summary>Service time percentiles (ms) of recent requests of a command: from the header read to the reply queued.</summary>
    public (double P50, double P99, long Count) Latency(NbdCommand command) => _latency[Slot(command)].Percentiles();

    private static int Slot(NbdCommand command) => command switch
    {
        NbdCommand.Read => 0,
        NbdCommand.Write => 1,
        NbdCommand.Flush => 2,
        _ => 3,
    };

    internal void Timed(NbdCommand command, double ms) => _latency[Slot(command)].Add(ms);

    internal void Served(NbdRequest request)
    {
        switch (request.Command)
        {
            case NbdCommand.Read:
                Interlocked.Increment(ref _reads);
                Interlocked.Add(ref _bytesRead, request.Length);
                break;
            case NbdCommand.Write:
                Interlocked.Increment(ref _writes);
                Interlocked.Add(ref _bytesWritten, request.Length);
                break;
            case NbdCommand.Flush:
                Interlocked.Increment(ref _flushes);
                break;
            default:
                Interlocked.Increment(ref _zeroes);
                break;
        }
        if ((request.Flags & CommandFlags.Fua) != 0)
        {
            Interlocked.Increment(ref _fua);
        }
    }

    internal void Failed(NbdError error)
    {
        switch (error)
        {
            case NbdError.Io: Interlocked.Increment(ref _ioErrors); break;
            case NbdError.Invalid: Interlocked.Increment(ref _invalid); break;
            default: Interlocked.Increment(ref _otherErrors); break;
        }
    }

    public override string ToString() =>
        $"connections {Connections} (protocol violations {ProtocolViolations}), reads {Reads} ({BytesRead / 1048576.0:F1} MiB), " +
        $"writes {Writes} ({BytesWritten / 1048576.0:F1} MiB, FUA {ForceUnitAccess}), flushes {Flushes}, zero/trim {Zeroes}, " +
        $"errors: EIO {IoErrors}, EINVAL {InvalidRequests}, other {OtherErrors}; service ms p50/p99: " +
        string.Join(", ", new[] { NbdCommand.Read, NbdCommand.Write, NbdCommand.Flush }.Select(c =>
        {
            var (p50, p99, n) = Latency(c);
            return $"{c.ToString().ToLowerInvariant()} {p50:F2}/{p99:F2} ({n})";
        }));

    /// <summary>The last 16384 samples of one command, for percentiles.</summary>
    private sealed class LatencyRing
    {
        private readonly double[] _samples = new double[16384];
        private long _count;

        public void Add(double ms)
        {
            long n = Interlocked.Increment(ref _count);
            _samples[(n - 1) % _samples.Length] = ms;
        }

        public (double P50, double P99, long Count) Percentiles()
        {
            long n = Interlocked.Read(ref _count);
            double[] copy = _samples.AsSpan(0, (int)Math.Min(n, _samples.Length)).ToArray();
            if (copy.Length == 0)
            {
                return (0, 0, 0);
            }
            Array.Sort(copy);
            return (copy[copy.Length / 2], copy[Math.Min(copy.Length - 1, (int)(copy.Length * 0.99))], n);
        }
    }
}
