namespace OrleansDif.Nbd;

/// <summary>A device in memory (a reference for the protocol, and for tests of it): flushes are counted, nothing else.</summary>
public sealed class MemoryDevice(long size) : IBlockDevice
{
    private readonly byte[] _data = new byte[checked((int)size)];
    private long _flushes;

    public long Size => size;
    public bool FlushCoversAllConnections => true;
    public long Flushes => Interlocked.Read(ref _flushes);

    /// <summary>Set to make every later request fail with this error (tests of the error path).</summary>
    public NbdError? FailWith { get; set; }

    public Task<byte[]> ReadAsync(long offset, int length, CancellationToken ct)
    {
        Fail();
        lock (_data)
        {
            return Task.FromResult(_data.AsSpan((int)offset, length).ToArray());
        }
    }

    public Task WriteAsync(long offset, byte[] data, bool fua, CancellationToken ct)
    {
        Fail();
        lock (_data)
        {
            data.CopyTo(_data.AsSpan((int)offset));
        }
        return Task.CompletedTask;
    }

    public Task ZeroAsync(long offset, long length, bool fua, CancellationToken ct)
    {
        Fail();
        lock (_data)
        {
            _data.AsSpan((int)offset, (int)length).Clear();
        }
        return Task.CompletedTask;
    }

    public Task FlushAsync(CancellationToken ct)
    {
        Fail();
        Interlocked.Increment(ref _flushes);
        return Task.CompletedTask;
    }

    private void Fail()
    {
        if (FailWith is NbdError e)
        {
            throw new BlockDeviceException(e, $"injected {e}");
        }
    }
}
