namespace OrleansDif.Nbd;

/// <summary>Magic numbers of the NBD protocol (network byte order on the wire).</summary>
public static class NbdMagic
{
    /// <summary>"NBDMAGIC": the first 8 bytes the server sends.</summary>
    public const ulong Init = 0x4e42444d41474943;
    /// <summary>"IHAVEOPT": newstyle negotiation, and the start of every option the client sends.</summary>
    public const ulong Option = 0x49484156454F5054;
    /// <summary>The start of every option reply.</summary>
    public const ulong OptionReply = 0x3e889045565a9;
    public const uint Request = 0x25609513;
    public const uint SimpleReply = 0x67446698;
}

/// <summary>Handshake flags the server sends after the magic.</summary>
[Flags]
public enum HandshakeFlags : ushort
{
    FixedNewstyle = 1 << 0,
    NoZeroes = 1 << 1,
}

/// <summary>Flags the client answers the handshake with.</summary>
[Flags]
public enum ClientFlags : uint
{
    FixedNewstyle = 1 << 0,
    NoZeroes = 1 << 1,
}

/// <summary>Options of the negotiation phase.</summary>
public enum NbdOption : uint
{
    ExportName = 1,
    Abort = 2,
    List = 3,
    StartTls = 5,
    Info = 6,
    Go = 7,
    StructuredReply = 8,
    ListMetaContext = 9,
    SetMetaContext = 10,
    ExtendedHeaders = 11,
}

/// <summary>Option reply types; errors have the top bit set.</summary>
public enum NbdOptionReply : uint
{
    Ack = 1,
    Server = 2,
    Info = 3,
    ErrUnsupported = 0x8000_0001,
    ErrPolicy = 0x8000_0002,
    ErrInvalid = 0x8000_0003,
    ErrPlatform = 0x8000_0004,
    ErrTlsRequired = 0x8000_0005,
    ErrUnknown = 0x8000_0006,
    ErrShutdown = 0x8000_0007,
    ErrBlockSizeRequired = 0x8000_0008,
    ErrTooBig = 0x8000_0009,
}

/// <summary>Information items of <see cref="NbdOption.Info"/> and <see cref="NbdOption.Go"/>.</summary>
public enum NbdInfo : ushort
{
    Export = 0,
    Name = 1,
    Description = 2,
    BlockSize = 3,
}

/// <summary>Transmission flags of an export.</summary>
[Flags]
public enum TransmissionFlags : ushort
{
    HasFlags = 1 << 0,
    ReadOnly = 1 << 1,
    SendFlush = 1 << 2,
    SendFua = 1 << 3,
    Rotational = 1 << 4,
    SendTrim = 1 << 5,
    SendWriteZeroes = 1 << 6,
    SendDf = 1 << 7,
    CanMultiConn = 1 << 8,
}

/// <summary>Commands of the transmission phase.</summary>
public enum NbdCommand : ushort
{
    Read = 0,
    Write = 1,
    Disconnect = 2,
    Flush = 3,
    Trim = 4,
    Cache = 5,
    WriteZeroes = 6,
    BlockStatus = 7,
}

/// <summary>Command flags.</summary>
[Flags]
public enum CommandFlags : ushort
{
    Fua = 1 << 0,
    NoHole = 1 << 1,
    DontFragment = 1 << 2,
    RequestOne = 1 << 3,
    FastZero = 1 << 4,
}

/// <summary>Error values of a reply (Linux errno numbers, as the protocol fixes them).</summary>
public enum NbdError : uint
{
    None = 0,
    Permission = 1,
    Io = 5,
    NoMemory = 12,
    Invalid = 22,
    NoSpace = 28,
    Overflow = 75,
    NotSupported = 95,
    Shutdown = 108,
}

/// <summary>The limits this server advertises and enforces.</summary>
public static class NbdLimits
{
    /// <summary>The smallest block a client should address (one sector).</summary>
    public const uint MinimumBlock = 512;
    /// <summary>The block size that avoids read-modify-write (one page).</summary>
    public const uint PreferredBlock = 4096;
    /// <summary>The largest READ or WRITE payload.</summary>
    public const uint MaximumPayload = 32 * 1024 * 1024;
    /// <summary>The longest option a client may send (an export name is at most 4096 bytes).</summary>
    public const int MaximumOption = 16 * 1024;
    public const int RequestSize = 28;
    public const int SimpleReplySize = 16;
}
