# Sourced by scripts/start after .env: HOST/PORT decide the platform's own URLs unless they are set
# explicitly (environment or .env). Site http://127.0.0.1:PORT; browser-mode proxy origin on the other
# loopback name, http://localhost:PORT (SPEC §8: its own origin). HOST=0.0.0.0 (every interface) is
# reached as 127.0.0.1 here. Never written into .env: another PORT next time gets its own URLs.
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
case "$HOST" in
  0.0.0.0 | "::" | "[::]") _site_host=127.0.0.1 ;;
  *) _site_host=$HOST ;;
esac
export BACKEND_URL=${BACKEND_URL:-http://$_site_host:$PORT}
case "$_site_host" in
  127.0.0.1) _proxy_host=localhost ;;
  localhost) _proxy_host=127.0.0.1 ;;
  *) _proxy_host= ;;  # another host name: PROXY_ORIGIN's default in settings, or set it explicitly
esac
if [ -z "${PROXY_ORIGIN:-}" ] && [ -n "$_proxy_host" ]; then
  export PROXY_ORIGIN=http://$_proxy_host:$PORT
fi
# Both loopback names are served (the site and the proxy origin); another HOST name is admitted too.
if [ -z "${ALLOWED_HOSTS:-}" ]; then
  ALLOWED_HOSTS=localhost,127.0.0.1,[::1]
  case "$_site_host" in localhost | 127.0.0.1) ;; *) ALLOWED_HOSTS=$ALLOWED_HOSTS,$_site_host ;; esac
  export ALLOWED_HOSTS
fi
unset _site_host _proxy_host
