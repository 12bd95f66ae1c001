// ref_go_echo [--udp] ADDRESS - Go's echo server: a goroutine per
// connection on the standard net package, the way Go servers are written.
//
// Stream (TCP, or a Unix socket for a path): the main goroutine accepts and
// starts a goroutine per connection, which reads into a 16 KiB buffer and
// writes back what each read returned until EOF. The blocking-looking calls
// park the goroutine on Go's netpoller (epoll, edge-triggered), so this is
// an M:N event loop behind a thread-per-connection style, as the library's
// async mode is meant to be.
//
// --udp (UDP, or a Unix datagram socket for a path): one goroutine loops
// ReadFrom / WriteTo, Go's plain datagram echo.
//
// ADDRESS is HOST:PORT, [V6]:PORT, a Unix socket path ("/...", "./...",
// "unix:PATH") or "@NAME" (an abstract name), as for every server of
// bench/; port 0 picks a free port. The first line on stdout is
// "listening on ADDRESS" with the real address. SIGINT and SIGTERM close
// the listening socket (a Unix one is unlinked) and exit 0.
//
// GOMAXPROCS is left to the runtime, which sets it to the number of CPUs
// the process may run on: bench/run pins the server to one core with
// taskset, so it is 1 there, as every other server gets one core. The
// runtime also raises the soft RLIMIT_NOFILE to the hard limit (Go 1.19+).
// TCP_NODELAY is Go's default; it is set anyway, as every server here does.
//
// Built by bench/run with `go build` (standard library only, no module).
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// bufSize is the read buffer of every echo of bench/.
const bufSize = 16384

// parseAddress returns the network family ("tcp", "unix") and the address
// to give net.Listen, from the address forms bench_common.c accepts.
func parseAddress(text string) (string, string) {
	if strings.HasPrefix(text, "unix:") {
		return "unix", text[len("unix:"):]
	}
	if strings.HasPrefix(text, "/") || strings.HasPrefix(text, ".") ||
		strings.HasPrefix(text, "@") {
		return "unix", text // Go makes "@NAME" an abstract name
	}
	i := strings.LastIndex(text, ":")
	if i < 0 {
		return "tcp", text // net.Listen reports the error
	}
	host, port := text[:i], text[i+1:]
	switch host {
	case "", "*":
		host = "0.0.0.0"
	case "localhost":
		host = "127.0.0.1"
	}
	if strings.HasPrefix(host, "[") {
		return "tcp6", host + ":" + port
	}
	return "tcp4", host + ":" + port
}

func echo(c net.Conn) {
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	buf := make([]byte, bufSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			// Write writes it all or fails.
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
				fmt.Fprintln(os.Stderr, "ref_go_echo: read:", err)
			}
			return
		}
	}
}

func serveStream(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and the like: report, pause, keep serving the
			// others (as net/http does).
			fmt.Fprintln(os.Stderr, "ref_go_echo: accept:", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go echo(c)
	}
}

func serveDatagram(pc net.PacketConn) error {
	buf := make([]byte, 65536) // a datagram is read whole or truncated
	for {
		n, peer, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			fmt.Fprintln(os.Stderr, "ref_go_echo: read:", err)
			continue
		}
		if _, err := pc.WriteTo(buf[:n], peer); err != nil {
			fmt.Fprintln(os.Stderr, "ref_go_echo: write:", err)
		}
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: ref_go_echo [--udp] ADDRESS")
	os.Exit(2)
}

func main() {
	args := os.Args[1:]
	udp := false
	if len(args) == 2 && args[0] == "--udp" {
		udp = true
		args = args[1:]
	}
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		usage()
	}
	network, address := parseAddress(args[0])
	if udp {
		network = map[string]string{"tcp4": "udp4", "tcp6": "udp6",
			"tcp": "udp", "unix": "unixgram"}[network]
	}

	var closer io.Closer
	var local net.Addr
	var serve func() error
	if udp {
		pc, err := net.ListenPacket(network, address)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ref_go_echo:", err)
			os.Exit(1)
		}
		closer, local = pc, pc.LocalAddr()
		serve = func() error { return serveDatagram(pc) }
	} else {
		l, err := net.Listen(network, address)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ref_go_echo:", err)
			os.Exit(1)
		}
		closer, local = l, l.Addr()
		serve = func() error { return serveStream(l) }
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- serve() }()

	// Go writes addresses as bench_format_addr does: 127.0.0.1:PORT,
	// [::1]:PORT, a path or @NAME.
	if _, err := fmt.Printf("listening on %s\n", local); err != nil {
		fmt.Fprintln(os.Stderr, "ref_go_echo: stdout:", err)
		os.Exit(1)
	}

	select {
	case <-stop:
		closer.Close() // unlinks a Unix socket file Go created
		if network == "unixgram" && !strings.HasPrefix(address, "@") {
			os.Remove(address)
		}
		<-done
		os.Exit(0)
	case err := <-done:
		fmt.Fprintln(os.Stderr, "ref_go_echo:", err)
		os.Exit(1)
	}
}
