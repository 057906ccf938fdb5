using System.Buffers;

namespace OrleansDif.Nbd.Tests.Protocol;

/// <summary>Request headers and their checks, without a server.</summary>
public sealed class NbdRequestTests
{
    private const long Size = 1 << 20;

    [Fact]
    public void AHeaderRoundTripsAndABadMagicIsAProtocolError()
    {
        var request = new NbdRequest(CommandFlags.Fua, NbdCommand.Write, 0x1122334455667788, 4096, 512);
        byte[] bytes = new byte[NbdLimits.RequestSize];
        request.Write(bytes);
        Assert.True(NbdRequest.TryRead(new ReadOnlySequence<byte>(bytes), out NbdRequest read));
        Assert.Equal(request, read);
        Assert.False(NbdRequest.TryRead(new ReadOnlySequence<byte>(bytes, 0, 27), out _));
        bytes[0] ^= 1;
        Assert.Throws<NbdProtocolException>(() => NbdRequest.TryRead(new ReadOnlySequence<byte>(bytes), out _));
    }

    [Theory]
    [InlineData(NbdCommand.Read, 0, 4096, NbdError.None)]
    [InlineData(NbdCommand.Write, Size - 512, 512, NbdError.None)]
    [InlineData(NbdCommand.Read, Size - 512, 1024, NbdError.Invalid)]      // past the end
    [InlineData(NbdCommand.Write, Size, 512, NbdError.Invalid)]
    [InlineData(NbdCommand.Read, long.MaxValue, 512, NbdError.Invalid)]    // offset + length overflows
    [InlineData(NbdCommand.Read, 0, 0, NbdError.Invalid)]                  // empty
    [InlineData(NbdCommand.WriteZeroes, 0, (uint)Size, NbdError.None)]
    [InlineData(NbdCommand.Trim, 4096, 0, NbdError.Invalid)]
    [InlineData(NbdCommand.Flush, 0, 0, NbdError.None)]
    [InlineData(NbdCommand.Flush, 4096, 0, NbdError.Invalid)]
    [InlineData(NbdCommand.Cache, 0, 4096, NbdError.Invalid)]              // not offered
    [InlineData(NbdCommand.BlockStatus, 0, 4096, NbdError.Invalid)]
    [InlineData((NbdCommand)99, 0, 4096, NbdError.Invalid)]                // unknown
    public void ChecksRangeLengthAndCommand(NbdCommand command, long offset, uint length, NbdError expected)
    {
        Assert.Equal(expected, new NbdRequest(0, command, 1, (ulong)offset, length).Check(Size));
    }

    [Fact]
    public void APayloadOverTheLimitIsInvalidWhateverTheExportSize()
    {
        long big = 1L << 40;
        Assert.Equal(NbdError.None, new NbdRequest(0, NbdCommand.Read, 1, 0, NbdLimits.MaximumPayload).Check(big));
        Assert.Equal(NbdError.Invalid, new NbdRequest(0, NbdCommand.Read, 1, 0, NbdLimits.MaximumPayload + 1).Check(big));
        Assert.Equal(NbdError.Invalid, new NbdRequest(0, NbdCommand.Write, 1, 0, NbdLimits.MaximumPayload + 1).Check(big));
    }

    [Fact]
    public void FlagsNotNegotiatedAreInvalid()
    {
        Assert.Equal(NbdError.None, new NbdRequest(CommandFlags.Fua, NbdCommand.Write, 1, 0, 512).Check(Size));
        Assert.Equal(NbdError.Invalid, new NbdRequest(CommandFlags.DontFragment, NbdCommand.Read, 1, 0, 512).Check(Size));
        Assert.Equal(NbdError.Invalid, new NbdRequest(CommandFlags.FastZero, NbdCommand.WriteZeroes, 1, 0, 512).Check(Size));
    }
}
