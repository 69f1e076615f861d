public import Hummingbird
import Logging

/// The per-request context: Hummingbird's core storage plus Cofre's request id.
public struct CofreRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Random per request; goes into logs, error bodies and audit events.
    public var requestID: String
    /// The peer's IP address (the proxy's, behind one): the console's login rate limit counts by it.
    public let remoteIP: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        requestID = ""
        remoteIP = source.channel.remoteAddress?.ipAddress
    }

    /// CONTRACT §4: bodies over 1 MiB are refused with 413.
    public var maxUploadSize: Int { 1 << 20 }
}
