namespace OrleansDif.Nbd;

/// <summary>
/// What an NBD export serves: a range of bytes that can be read, written, zeroed and flushed. Requests reach it
/// checked (in range, not empty). A failure is an exception; <see cref="NbdErrors.From"/> maps it to the reply.
/// </summary>
public interface IBlockDevice
{
    /// <summary>Size in bytes.</summary>
    long Size { get; }

    /// <summary>A flush covers every write that completed before it, on any connection (CAN_MULTI_CONN).</summary>
    bool FlushCoversAllConnections { get; }

    Task<byte[]> ReadAsync(long offset, int length, CancellationToken ct);

    /// <summary>Writes <paramref name="data"/> (owned by the device from now on); with <paramref name="fua"/> durable before it returns.</summary>
    Task WriteAsync(long offset, byte[] data, bool fua, CancellationToken ct);

    /// <summary>Zeroes a range (WRITE_ZEROES, and TRIM, whose reads must then return zeros here).</summary>
    Task ZeroAsync(long offset, long length, bool fua, CancellationToken ct);

    /// <summary>Makes every completed write durable; throws when one was lost or could not be written.</summary>
    Task FlushAsync(CancellationToken ct);
}

/// <summary>The exports a server offers, by name.</summary>
public interface IExportCatalog
{
    IReadOnlyList<string> Names { get; }

    /// <summary>The device of export <paramref name="name"/>, or null when there is none of that name.</summary>
    Task<IBlockDevice?> OpenAsync(string name, CancellationToken ct);
}

/// <summary>A device failure with the error the client gets for it.</summary>
public sealed class BlockDeviceException(NbdError error, string message, Exception? inner = null) : Exception(message, inner)
{
    public NbdError Error { get; } = error;
}
