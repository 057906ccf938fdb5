namespace OrleansDif.Protection.Tests;

/// <summary>Plain bitwise CRC-16/T10-DIF, straight from the definition. Used only to check the kernels.</summary>
internal static class Crc16Reference
{
    public static ushort Compute(ReadOnlySpan<byte> data, ushort crc = 0)
    {
        foreach (byte b in data)
        {
            crc ^= (ushort)(b << 8);
            for (int bit = 0; bit < 8; bit++)
            {
                crc = (crc & 0x8000) != 0 ? (ushort)((crc << 1) ^ 0x8BB7) : (ushort)(crc << 1);
            }
        }
        return crc;
    }
}
