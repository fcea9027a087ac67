package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func init() {
	register("serve", "serve the web app (every analysis runs in the browser)", runServe)
}

func runServe(args []string, stdout io.Writer) error {
	fs := newFlags("serve", "")
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	webDir := fs.String("web", "", "folder with app.wasm and the web assets (default: those built into this binary)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	s, err := newSite(*webDir, log.New(os.Stderr, "vitlens serve: ", 0).Printf)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := newHTTPServer(s)
	fmt.Fprintf(stdout, "vitlens: serving the web app at http://%s/ (version %s); Ctrl-C stops\n", ln.Addr(), s.Version())
	fmt.Fprint(stdout, listenNote(ln.Addr()))
	ln = newLimitListener(ln, maxConns())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newHTTPServer bounds how long a client may hold a connection: a slow or
// idle client cannot pin the server.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute, // app.wasm over a slow link
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}
