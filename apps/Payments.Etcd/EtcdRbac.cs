using Authpb;
using Etcdserverpb;

namespace Payments.Etcd;

/// <summary>An etcd user and role of the same name (the common name of that app's client certificate), allowed to read
/// and write only under <paramref name="Prefixes"/>, and to read under <paramref name="ReadPrefixes"/>.</summary>
public sealed record EtcdRole(string Name, IReadOnlyList<string> Prefixes, IReadOnlyList<string> ReadPrefixes);

/// <summary>Turns on etcd's authentication with one role per app (etcd v3 RBAC: a user's permissions are the union of
/// its roles' key ranges). Idempotent: users and roles that exist are kept, permissions granted again; so it also
/// grants a role more prefixes on a cluster whose auth is already on (when called as root).</summary>
public static class EtcdRbac
{
    public const string Root = "root";

    /// <summary>The user the storage maintenance runs as (defragmentation and disarming an alarm need etcd's root role:
    /// etcd has no narrower right, server/etcdserver/api/v3rpc/maintenance.go). Its own name, so etcd's log tells it
    /// from the operator.</summary>
    public const string Maintenance = "maintenance";

    /// <summary>Creates <see cref="Root"/> (etcd requires it before auth can be enabled; the operator's certificate
    /// carries it), each role and its user, then enables auth. Call with a connection that may still do all of it.</summary>
    public static async Task EnableAsync(EtcdConnection connection, IReadOnlyList<EtcdRole> roles, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(roles);
        var auth = connection.Auth;
        await AddUserWithRoleAsync(auth, Root, cancellationToken);
        await AddUserWithRoleAsync(auth, Maintenance, cancellationToken, role: Root);
        foreach (var role in roles)
        {
            await AddUserWithRoleAsync(auth, role.Name, cancellationToken);
            foreach (var (prefix, type) in role.Prefixes.Select(prefix => (prefix, Permission.Types.Type.Readwrite))
                         .Concat(role.ReadPrefixes.Select(prefix => (prefix, Permission.Types.Type.Read))))
            {
                await EtcdConnection.CallAsync(token => auth.RoleGrantPermissionAsync(new AuthRoleGrantPermissionRequest
                {
                    Name = role.Name,
                    Perm = new Permission { PermType = type, Key = EtcdBytes.Key(prefix), RangeEnd = EtcdBytes.PrefixEnd(prefix) },
                }, cancellationToken: token), cancellationToken);
            }
        }

        await EtcdConnection.CallAsync(token => auth.AuthEnableAsync(new AuthEnableRequest(), cancellationToken: token), cancellationToken);
    }

    private static async Task AddUserWithRoleAsync(Auth.AuthClient auth, string name, CancellationToken cancellationToken, string? role = null)
    {
        role ??= name;
        await IgnoreExistingAsync(() => EtcdConnection.CallAsync(token => auth.RoleAddAsync(new AuthRoleAddRequest { Name = role }, cancellationToken: token), cancellationToken));
        // No password: the user proves itself with its client certificate (etcd --client-cert-auth).
        await IgnoreExistingAsync(() => EtcdConnection.CallAsync(token => auth.UserAddAsync(
            new AuthUserAddRequest { Name = name, Options = new UserAddOptions { NoPassword = true } }, cancellationToken: token), cancellationToken));
        await EtcdConnection.CallAsync(token => auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = name, Role = role }, cancellationToken: token), cancellationToken);
    }

    private static async Task IgnoreExistingAsync(Func<Task> call)
    {
        try
        {
            await call();
        }
        catch (Grpc.Core.RpcException exception) when (exception.Status.Detail.Contains("already exists", StringComparison.Ordinal))
        {
            // idempotent: a second set-up keeps what the first made
        }
    }
}
