import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whether `serve` can listen where it was asked to, checked before anything else is touched (no key
/// ring created, no store opened or migrated): a second server on a busy port is told so in words.
enum PortCheck {
    static func ensureFree(host: String, port: Int) throws {
        guard port != 0 else { return }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else {
            throw CLIError("cannot listen on \(host): not an address or a host name this machine resolves (--host / COFRE_HOST)")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { return }  // let the server report it
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            switch errno {
            case EADDRINUSE:
                throw CLIError("port \(port) on \(host) is in use (another cofre serve?); stop it or choose another port with --port / COFRE_PORT")
            case EACCES:
                throw CLIError("not allowed to listen on port \(port) (ports below 1024 need privileges); choose another with --port / COFRE_PORT")
            case EADDRNOTAVAIL:
                throw CLIError("\(host) is not an address of this machine (--host / COFRE_HOST)")
            default:
                throw CLIError("cannot listen on \(host):\(port) (errno \(errno))")
            }
        }
    }
}
