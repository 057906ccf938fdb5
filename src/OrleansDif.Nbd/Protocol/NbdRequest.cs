using System.Buffers;
using System.Buffers.Binary;

namespace OrleansDif.Nbd;

/// <summary>One request of the transmission phase (the 28-byte header; a WRITE's payload follows it).</summary>
public readonly record struct NbdRequest(CommandFlags Flags, NbdCommand Command, ulong Cookie, ulong Offset, uint Length)
{
    /// <summary>Reads a request header. False when fewer than 28 bytes are there; throws on a bad magic.</summary>
    public static bool TryRead(ReadOnlySequence<byte> buffer, out NbdRequest request)
    {
        request = default;
        if (buffer.Length < NbdLimits.RequestSize)
        {
            return false;
        }
        Span<byte> header = stackalloc byte[NbdLimits.RequestSize];
        buffer.Slice(0, NbdLimits.RequestSize).CopyTo(header);
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (magic != NbdMagic.Request)
        {
            throw new NbdProtocolException($"request magic 0x{magic:X8}, expected 0x{NbdMagic.Request:X8}");
        }
        request = new NbdRequest(
            (CommandFlags)BinaryPrimitives.ReadUInt16BigEndian(header[4..]),
            (NbdCommand)BinaryPrimitives.ReadUInt16BigEndian(header[6..]),
            BinaryPrimitives.ReadUInt64BigEndian(header[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(header[16..]),
            BinaryPrimitives.ReadUInt32BigEndian(header[24..]));
        return true;
    }

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdMagic.Request);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], (ushort)Flags);
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)Command);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], Cookie);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], Offset);
        BinaryPrimitives.WriteUInt32BigEndian(destination[24..], Length);
    }

    /// <summary>
    /// Whether this request can be served on an export of <paramref name="size"/> bytes: None, or the error to reply
    /// with (nothing is done then). Out of range, empty, or a payload over the limit: EINVAL; a command this server
    /// does not offer: EINVAL (as the protocol asks for unknown commands).
    /// </summary>
    public NbdError Check(long size)
    {
        switch (Command)
        {
            case NbdCommand.Flush:
                return Offset == 0 && Length == 0 ? NbdError.None : NbdError.Invalid;
            case NbdCommand.Read:
            case NbdCommand.Write:
                if (Length > NbdLimits.MaximumPayload)
                {
                    return NbdError.Invalid;
                }
                break;
            case NbdCommand.Trim:
            case NbdCommand.WriteZeroes:
                break;
            default:
                return NbdError.Invalid;
        }
        if ((Flags & ~(CommandFlags.Fua | CommandFlags.NoHole)) != 0)
        {
            return NbdError.Invalid; // DF, REQ_ONE, FAST_ZERO: not negotiated here
        }
        if (Length == 0 || Offset > (ulong)size || Length > (ulong)size - Offset)
        {
            return NbdError.Invalid;
        }
        return NbdError.None;
    }
}

/// <summary>The peer broke the protocol: the connection is closed (the server goes on serving everyone else).</summary>
public sealed class NbdProtocolException(string message, bool peerLeft = false) : Exception(message)
{
    /// <summary>The peer closed the connection before sending anything more (a port probe, a client that gave up): not a violation.</summary>
    public bool PeerLeft { get; } = peerLeft;
}
