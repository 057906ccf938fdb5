using System.Buffers.Binary;

namespace OrleansDif.Grains;

/// <summary>
/// Writeback ids: unique across page activations and silo processes (a random 64-bit prefix per process, then a
/// counter), made without the kernel random read that <see cref="Guid.NewGuid"/> costs on every writeback.
/// </summary>
internal static class WritebackIds
{
    private static readonly long Prefix = Random.Shared.NextInt64(long.MinValue, long.MaxValue);
    private static long _next;

    public static Guid Next()
    {
        Span<byte> id = stackalloc byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(id, Prefix);
        BinaryPrimitives.WriteInt64LittleEndian(id[8..], Interlocked.Increment(ref _next));
        return new Guid(id);
    }
}
