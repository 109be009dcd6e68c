using System.Text;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Payments.Api.Webhooks;

/// <summary>Which URLs may receive webhooks: https on port 443 of a public address. Checked when an endpoint is registered (the
/// URL's form) and again at every connection (the addresses its host resolves to then), because DNS can change after
/// registration — a merchant must not be able to aim the API at the cluster's own services or the cloud's metadata
/// endpoint (server-side request forgery).</summary>
public static class WebhookTargets
{
    public const int MaxUrlLength = 2048;

    /// <summary>The one port a public endpoint may use: the chart's NetworkPolicy lets deliveries out on it alone (an
    /// endpoint on another port would never receive one), and no other service of a public host can be aimed at.</summary>
    public const int HttpsPort = 443;

    /// <summary>Host names that only a cluster's or a cloud's own resolver answers: never a merchant's public host.</summary>
    private static readonly string[] InternalSuffixes = [".local", ".localhost", ".internal", ".svc", ".cluster.local", ".home.arpa"];

    /// <summary>Why <paramref name="url"/> cannot be an endpoint, or null if it can. <paramref name="allowLoopback"/>
    /// (development and tests, <see cref="WebhookOptions.AllowLoopbackTargets"/>) admits this machine's loopback
    /// (localhost, 127.0.0.0/8, ::1), over http too; every other non-public address stays refused.</summary>
    public static string? Problem(string? url, bool allowLoopback)
    {
        if (string.IsNullOrWhiteSpace(url) || url.Length > MaxUrlLength || !Uri.TryCreate(url, UriKind.Absolute, out var uri))
        {
            return $"url must be an absolute https URL of at most {MaxUrlLength} characters.";
        }

        // Stored as given and shown back to the merchant: nothing a reader cannot see (CR/LF, NUL, spaces, soft hyphens,
        // zero-width characters, which IDNA also drops from a host).
        // By runes: a tag character is a surrogate pair, and neither half is a format character on its own.
        if (url.EnumerateRunes().Any(rune => System.Text.Rune.IsWhiteSpace(rune) || Payments.Api.Apis.HiddenText.IsHiddenOrControl(rune)))
        {
            return "url must not contain control characters, spaces, invisible characters or noncharacters.";
        }

        var loopback = allowLoopback && uri.IsLoopback;
        if (uri.Scheme != Uri.UriSchemeHttps && !(loopback && uri.Scheme == Uri.UriSchemeHttp))
        {
            return "url must use https.";
        }

        if (!string.IsNullOrEmpty(uri.UserInfo) || !string.IsNullOrEmpty(uri.Fragment))
        {
            return "url must not carry credentials or a fragment; authenticate deliveries by their signature.";
        }

        if (!loopback && uri.Port != HttpsPort)
        {
            return $"url must use https's own port {HttpsPort}: webhook deliveries are sent on that port alone.";
        }

        // IDNA maps fullwidth forms, other scripts' digits and ideographic full stops to ASCII, so such a host may name
        // an address the checks below never see as one (in invariant globalization mode Uri does not map them at all).
        if (uri.Host.Any(c => c > '\x7f' && (char.IsDigit(c) || c is >= '\uff00' and <= '\uffef' or '\u3002')))
        {
            return "url's host must be written without fullwidth or non-ASCII digits and dots.";
        }

        // Likewise compatibility forms IDNA maps elsewhere ("ⓔⓧⓐⓜⓟⓛⓔ.com", "𝐞𝐱𝐚𝐦𝐩𝐥𝐞.com": example.com; "⑯⑨.②⑤④…": an
        // address) and capitals: the merchant was shown another host than deliveries go to (a probe). Neither Uri nor
        // normalization maps them in invariant globalization mode, so they are refused by what they are (IsHostLetter).
        if (uri.Host.EnumerateRunes().Any(rune => rune.Value > 0x7f && !IsHostLetter(rune)))
        {
            return "url's host must be written in lowercase letters: no capitals, symbols or compatibility forms outside ASCII.";
        }

        // Deliveries leave the cluster over IPv4 (the chart's NetworkPolicy); an IPv6 literal also hides IPv4
        // addresses in several forms (compatible, translated, 6to4, Teredo).
        if (!loopback && uri.HostNameType == UriHostNameType.IPv6)
        {
            return "url must name its host by DNS name or IPv4 address, not an IPv6 literal.";
        }

        var host = uri.IdnHost.TrimEnd('.');
        if (!loopback && uri.HostNameType != UriHostNameType.IPv4 && !IsHostName(host))
        {
            return "url's host must be a DNS host name: labels of letters, digits and inner hyphens, at most 63 characters each and 253 in all.";
        }

        if (!loopback && (uri.IsLoopback || (IPAddress.TryParse(host, out var address) && !IsPublic(address))
                          || !host.Contains('.', StringComparison.Ordinal)
                          || InternalSuffixes.Any(suffix => host.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))))
        {
            return "url must name a public host (not loopback, private, link-local or a cluster-internal name).";
        }

        return null;
    }

    /// <summary>Unicode blocks (and single characters) of compatibility forms, which IDNA maps to other characters:
    /// ª º ſ, spacing and phonetic modifier letters, super- and subscripts, letterlike symbols (ℓ ℯ), number forms,
    /// enclosed alphanumerics, enclosed and compatibility CJK, Hangul compatibility jamo, compatibility ideographs,
    /// presentation forms (ﬁ), small and half- or fullwidth forms, mathematical alphanumerics (𝐞).</summary>
    private static readonly (int First, int Last)[] CompatibilityForms =
    [
        (0x00AA, 0x00AA), (0x00BA, 0x00BA), (0x017F, 0x017F), (0x02B0, 0x02FF), (0x1D2C, 0x1D6A), (0x1D78, 0x1D78), (0x1D9B, 0x1DBF),
        (0x2070, 0x209F), (0x2100, 0x218F), (0x2460, 0x24FF), (0x3131, 0x318E), (0x3200, 0x33FF), (0xF900, 0xFAFF), (0xFB00, 0xFDFF),
        (0xFE30, 0xFE4F), (0xFE50, 0xFEFF), (0xFF00, 0xFFEF), (0x1D400, 0x1D7FF), (0x1F100, 0x1F1FF), (0x2F800, 0x2FA1F),
    ];

    /// <summary>A non-ASCII character a host may hold: a lowercase, caseless or modifier letter (ー, 々) or a mark that
    /// joins them, or a joiner IDNA 2008 allows in context (·, ・), outside the blocks of compatibility forms.</summary>
    private static bool IsHostLetter(Rune rune) =>
        (rune.Value is 0x00B7 or 0x30FB
         || Rune.GetUnicodeCategory(rune) is UnicodeCategory.LowercaseLetter or UnicodeCategory.OtherLetter or UnicodeCategory.ModifierLetter
             or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark)
        && !CompatibilityForms.Any(range => rune.Value >= range.First && rune.Value <= range.Last);

    /// <summary>Whether <paramref name="host"/> (IDNA's ASCII form, no trailing dot) is a name a receiver can have: Uri
    /// took "-a.com", "exa_mple.com", "xn--.com", 70-character labels and 310-character names, which no resolver or
    /// certificate carries, and each held one of the merchant's endpoint places for good (RFC 1123 2.1, RFC 5890 for
    /// "xn--" labels; a top-level label of digits only would be an address).</summary>
    private static bool IsHostName(string host)
    {
        var labels = host.Split('.');
        return host.Length <= 253 && !labels[^1].All(char.IsAsciiDigit) && labels.All(label =>
            label.Length is > 0 and <= 63 && label[0] != '-' && label[^1] != '-' && label.All(c => char.IsAsciiLetterOrDigit(c) || c == '-')
            && (!label.StartsWith("xn--", StringComparison.OrdinalIgnoreCase) || IsPunycode(label)));
    }

    /// <summary>An "xn--" label that decodes, to visible characters ("xn--a" is U+0080), that encode back to it.</summary>
    private static bool IsPunycode(string label)
    {
        var idn = new System.Globalization.IdnMapping();
        try
        {
            var unicode = idn.GetUnicode(label);
            return unicode.Length > 0 && !unicode.EnumerateRunes().Any(Payments.Api.Apis.HiddenText.IsHiddenOrControl)
                && string.Equals(idn.GetAscii(unicode), label, StringComparison.OrdinalIgnoreCase);
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>A connection to the first public IPv4 address the host resolves to (or loopback one, when
    /// <paramref name="allowLoopback"/>); refuses the connection when there is none. IPv4 alone, as deliveries leave
    /// (docs/api.md; the chart's NetworkPolicy opens IPv4 blocks): a dual-stack receiver whose AAAA came first had
    /// every attempt spend its 10 s on an IPv6 connection the policy drops, and was never delivered to (a review).</summary>
    public static async ValueTask<Stream> ConnectAsync(DnsEndPoint endpoint, bool allowLoopback, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var addresses = await Dns.GetHostAddressesAsync(LookupName(endpoint.Host), cancellationToken);
        var allowed = Deliverable(addresses, allowLoopback);
        if (allowed.Length == 0)
        {
            throw new HttpRequestException($"Refused: {endpoint.Host} resolves to no public IPv4 address.");
        }

        // An endpoint registered before the port rule is refused at delivery too (a public address on another port).
        allowed = [.. allowed.Where(address => endpoint.Port == HttpsPort || IsLoopback(address))];
        if (allowed.Length == 0)
        {
            throw new HttpRequestException($"Refused: port {endpoint.Port}; deliveries go to port {HttpsPort} only.");
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(allowed, endpoint.Port, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The addresses a delivery may connect to, in the resolver's order: public IPv4 ones (loopback ones, of
    /// either family, too when <paramref name="allowLoopback"/>: development's receiver).</summary>
    public static IPAddress[] Deliverable(IEnumerable<IPAddress> addresses, bool allowLoopback) =>
        [.. addresses.Where(address => (address.AddressFamily == AddressFamily.InterNetwork && IsPublic(address)) || (allowLoopback && IsLoopback(address)))];

    /// <summary>The name to resolve for <paramref name="host"/>: absolute (a trailing dot), so the resolver never tries
    /// it under the pod's search domains first. Kubernetes sets ndots:5, so a relative "ledger.payments" would be tried
    /// as ledger.payments.&lt;namespace&gt;.svc.cluster.local — the cluster's own service — before public DNS, and a
    /// cluster whose service addresses are public-range would pass the address check. IP literals and localhost
    /// (development's loopback) stay as they are.</summary>
    public static string LookupName(string host)
    {
        ArgumentNullException.ThrowIfNull(host);
        return IPAddress.TryParse(host, out _) || host.EndsWith('.') || string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)
            ? host
            : host + ".";
    }

    /// <summary>False for loopback, private (RFC 1918, RFC 4193), link-local, shared (RFC 6598), benchmarking,
    /// documentation, multicast, reserved and unspecified addresses, IPv4-mapped ones judged as IPv4.</summary>
    public static bool IsPublic(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (IPAddress.IsLoopback(address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) || address.Equals(IPAddress.IPv6None))
        {
            return false;
        }

        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            return !(address.IsIPv6LinkLocal || address.IsIPv6SiteLocal || address.IsIPv6Multicast || address.IsIPv6UniqueLocal
                     || NonPublicV6.Any(network => network.Contains(address)));
        }

        return !NonPublicV4.Any(network => network.Contains(address));
    }

    /// <summary>127.0.0.0/8 or ::1, also when written as an IPv4-mapped IPv6 address.</summary>
    public static bool IsLoopback(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return IPAddress.IsLoopback(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);
    }

    /// <summary>Documentation; NAT64 (which reaches IPv4 addresses through a translator, private ones included); and the
    /// forms that embed an IPv4 address: IPv4-compatible (::/96, deprecated), IPv4-translated (::ffff:0:0:0/96), 6to4
    /// (2002::/16) and Teredo (2001::/32); none is how a public receiver is reached.</summary>
    private static readonly IPNetwork[] NonPublicV6 =
    [
        IPNetwork.Parse("2001:db8::/32"), IPNetwork.Parse("64:ff9b::/96"), IPNetwork.Parse("64:ff9b:1::/48"),
        IPNetwork.Parse("::/96"), IPNetwork.Parse("::ffff:0:0:0/96"), IPNetwork.Parse("2002::/16"), IPNetwork.Parse("2001::/32"),
    ];

    private static readonly IPNetwork[] NonPublicV4 =
    [
        IPNetwork.Parse("0.0.0.0/8"), IPNetwork.Parse("10.0.0.0/8"), IPNetwork.Parse("100.64.0.0/10"), IPNetwork.Parse("127.0.0.0/8"),
        IPNetwork.Parse("169.254.0.0/16"), IPNetwork.Parse("172.16.0.0/12"), IPNetwork.Parse("192.0.0.0/24"), IPNetwork.Parse("192.0.2.0/24"),
        IPNetwork.Parse("192.168.0.0/16"), IPNetwork.Parse("198.18.0.0/15"), IPNetwork.Parse("198.51.100.0/24"), IPNetwork.Parse("203.0.113.0/24"),
        IPNetwork.Parse("224.0.0.0/4"), IPNetwork.Parse("240.0.0.0/4"),
    ];
}
