namespace OrleansDif.Nbd;

/// <summary>
/// The writeback errors a device's fsyncs were told of, so that each handle (connection) is told of every error
/// recorded after it opened, once (errseq). Error numbers go on across flusher activations, so a handle keeps only
/// the number it has seen up to: the one of the mark it sampled when it opened, then the newest it was told. The
/// oldest entries are forgotten past a bound (<see cref="WritebackErrorLog"/>): a handle behind them is told that
/// errors were dropped. Thread-safe.
/// </summary>
public sealed class DeviceErrorLog(int capacity = 4096)
{
    private readonly object _gate = new();
    private readonly WritebackErrorLog _log = new(capacity);
    private ErrorMark? _seen;    // how far the device's fsyncs have been told

    /// <summary>The mark to hand the next fsync: what the log has been told so far (null: nothing yet).</summary>
    public ErrorMark? Seen
    {
        get
        {
            lock (_gate)
            {
                return _seen;
            }
        }
    }

    /// <summary>Starts the log at <paramref name="mark"/> (the volume's sequence when the device opened), if it has none.</summary>
    public void Start(ErrorMark mark)
    {
        lock (_gate)
        {
            _seen ??= mark;
        }
    }

    /// <summary>Takes in what an fsync reported: its errors not had yet, and its mark.</summary>
    public void Learn(FsyncResult result)
    {
        lock (_gate)
        {
            foreach (WritebackError e in result.Errors ?? [])
            {
                if (e.Sequence <= Math.Max(_seen?.Sequence ?? 0, _log.Last))
                {
                    continue; // had it (fsyncs that ran side by side were told the same errors)
                }
                _log.Add(e);
            }
            if (result.Mark != default && (_seen is not { } before || before.Sequence < result.Mark.Sequence))
            {
                _seen = result.Mark;
            }
        }
    }

    /// <summary>
    /// The errors a handle has not been told of: those numbered after <paramref name="seen"/>, which then moves past
    /// them: each error is told once.
    /// </summary>
    public WritebackError[] Unseen(ref long seen)
    {
        lock (_gate)
        {
            WritebackError[] errors = _log.Since(seen, 0);
            seen = Math.Max(seen, _log.Last);
            return errors;
        }
    }
}

/// <summary>
/// One open of a volume device (an NBD connection's export): reads, writes and zeroing go to the device; a flush is
/// the device's group-committed fsync, and then fails (EIO) if a writeback error was recorded since this handle
/// opened or last flushed, once per error (errseq). Another handle of the same device is told of the same error.
/// </summary>
public sealed class VolumeHandle : IBlockDevice
{
    private readonly object _gate = new();
    private long _seen;   // the error number this handle has been told up to

    internal VolumeHandle(VolumeDevice device, ErrorMark opened)
    {
        Device = device;
        _seen = opened.Sequence;
    }

    public VolumeDevice Device { get; }

    public long Size => Device.Size;

    public bool FlushCoversAllConnections => Device.FlushCoversAllConnections;

    public Task<byte[]> ReadAsync(long offset, int length, CancellationToken ct) => Device.ReadAsync(offset, length, ct);

    /// <summary>A write; with FUA (an O_DSYNC write), also fails if a writeback error is news to this handle.</summary>
    public async Task WriteAsync(long offset, byte[] data, bool fua, CancellationToken ct)
    {
        await Device.WriteAsync(offset, data, fua, ct);
        if (fua)
        {
            ThrowUnseen();
        }
    }

    public async Task ZeroAsync(long offset, long length, bool fua, CancellationToken ct)
    {
        await Device.ZeroAsync(offset, length, fua, ct);
        if (fua)
        {
            ThrowUnseen();
        }
    }

    public async Task FlushAsync(CancellationToken ct)
    {
        await Device.FlushAsync(ct);
        ThrowUnseen();
    }

    /// <summary>EIO when a writeback error was recorded since this handle opened or was last told.</summary>
    private void ThrowUnseen()
    {
        WritebackError[] unseen;
        lock (_gate)
        {
            unseen = Device.Errors.Unseen(ref _seen);
        }
        if (unseen.Length > 0)
        {
            int[] pages = [.. unseen.SelectMany(e => e.Pages).Distinct().Order()];
            throw new BlockDeviceException(NbdError.Io, $"fsync of {Device.Volume.Id}: {string.Join("; ", unseen.Select(e => e.Cause).Distinct())}"
                + (pages.Length > 0 ? $" (pages {string.Join(", ", pages.Take(10))})" : ""));
        }
    }
}
