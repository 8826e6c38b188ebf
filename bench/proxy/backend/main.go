// Command backend is the HTTP server behind both proxies in the proxy
// benchmark: it listens on every address given and answers each request
// with a short fixed body naming the port, as a small service would.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:19001", "comma-separated host:port to listen on, one instance each")
	size := flag.Int("size", 64, "bytes of each answer's body")
	flag.Parse()
	errc := make(chan error)
	for _, addr := range strings.Split(*listen, ",") {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		body := []byte(strings.Repeat("x", max(*size-len(port)-1, 0)) + port + "\n")
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				_, _ = w.Write(body)
			}),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       5 * time.Minute,
		}
		go func() { errc <- srv.Serve(ln) }()
	}
	log.Fatal(<-errc)
}
