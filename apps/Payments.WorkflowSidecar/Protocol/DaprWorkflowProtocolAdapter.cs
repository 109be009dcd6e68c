using System.Buffers.Binary;
using Microsoft.DurableTask.Protobuf;

namespace Payments.WorkflowSidecar.Protocol;

/// <summary>Makes Dapr's workflow client (Dapr.Workflow 1.19) understood by Microsoft's durable-task gRPC server.</summary>
/// <remarks>
/// Dapr forked the durable-task protocol and gave some field numbers other meanings (measured; see the project's
/// ENVIRONMENT notes): in a CompleteOrchestratorTask request, <c>WorkflowResponse.version</c> (#6),
/// <c>WorkflowAction.router</c> (#9), <c>ScheduleTaskAction.router</c> (#4) and <c>.taskExecutionId</c> (#5), and
/// <c>CreateChildWorkflowAction.router</c> (#5) and its propagation scope (#6) collide with Microsoft's fields of the
/// same numbers and other wire types, and Microsoft's parser rejects the whole request. None of them matters to a
/// single local engine (routers address other app ids; versions are unused here), so this middleware removes them
/// from the request bytes before the gRPC service parses them. The apps' Dapr SDK code stays exactly as in production.
/// </remarks>
internal static class DaprWorkflowProtocolAdapter
{
    /// <summary>Largest request the adapter rewrites (gRPC's own default limit is 4 MiB).</summary>
    public const int MaxRequestBytes = 16 * 1024 * 1024;

    private const int FrameHeaderBytes = 5;

    public static readonly string CompleteOrchestratorTaskPath =
        $"/{TaskHubSidecarService.Descriptor.FullName}/CompleteOrchestratorTask";

    // Field numbers of Dapr's messages (Dapr.DurableTask.Protobuf in Dapr.Workflow.Grpc 1.19).
    internal static readonly FieldFilter WorkflowResponseFilter = new(
        drop: [6], // WorkflowResponse.version
        into: new Dictionary<int, FieldFilter>
        {
            [2] = new( // WorkflowResponse.actions
                drop: [9], // WorkflowAction.router
                into: new Dictionary<int, FieldFilter>
                {
                    [2] = new(drop: [4, 5]), // ScheduleTaskAction.router, .taskExecutionId
                    [3] = new(drop: [5, 6]), // CreateChildWorkflowAction.router, .historyPropagationScope
                }),
        });

    public static async Task RewriteAsync(HttpContext context, RequestDelegate next)
    {
        if (context.Request.Path != CompleteOrchestratorTaskPath)
        {
            await next(context);
            return;
        }

        // Read no further than one buffer past the limit: the whole body is held in memory to be rewritten.
        using var original = new MemoryStream();
        var buffer = new byte[81_920];
        int read;
        while ((read = await context.Request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
        {
            original.Write(buffer, 0, read);
            if (original.Length > MaxRequestBytes)
            {
                // A gRPC answer (trailers only), as the caller's gRPC client expects one: RESOURCE_EXHAUSTED.
                context.Response.ContentType = "application/grpc";
                context.Response.Headers["grpc-status"] = "8";
                context.Response.Headers["grpc-message"] = $"The request is larger than {MaxRequestBytes} bytes.";
                return;
            }
        }

        // A body that is not well-framed protobuf goes on as it came: the gRPC service refuses it with its own status.
        context.Request.Body = new MemoryStream(RewriteFrames(original.ToArray()) ?? original.ToArray());
        await next(context);
    }

    /// <summary>Rewrites each gRPC length-prefixed message (1 byte compression flag, 4 bytes big-endian length); null
    /// when the frames do not add up to the body or a message is not protobuf.</summary>
    internal static byte[]? RewriteFrames(byte[] body)
    {
        using var rewritten = new MemoryStream(body.Length);
        Span<byte> header = stackalloc byte[FrameHeaderBytes];
        var offset = 0;
        while (offset + FrameHeaderBytes <= body.Length)
        {
            var compressed = body[offset] != 0;
            var declared = BinaryPrimitives.ReadUInt32BigEndian(body.AsSpan(offset + 1, 4));
            if (declared > (uint)(body.Length - offset - FrameHeaderBytes))
            {
                return null;
            }

            var length = (int)declared;
            var message = body.AsSpan(offset + FrameHeaderBytes, length);
            byte[] output;
            try
            {
                // Dapr's client does not compress; a compressed frame is passed on untouched.
                output = compressed ? message.ToArray() : WorkflowResponseFilter.Apply(message);
            }
            catch (Exception exception) when (exception is Google.Protobuf.InvalidProtocolBufferException or InvalidDataException)
            {
                return null;
            }

            header[0] = body[offset];
            BinaryPrimitives.WriteUInt32BigEndian(header[1..], (uint)output.Length);
            rewritten.Write(header);
            rewritten.Write(output);
            offset += FrameHeaderBytes + length;
        }

        // Bytes left that do not make a frame header: not a well-framed body either.
        return offset == body.Length ? rewritten.ToArray() : null;
    }
}
