# Drives essim with Debian's ruby-elasticsearch-transport 7.17, the
# transport behind fluent-plugin-elasticsearch. ARGV: url, reload_connections
# (an Integer re-sniffs every N requests; "false" never), requests.
# Prints a JSON array: "ok" or "Class: message" per request.
require 'elasticsearch/transport'
require 'json'

url, reload, n = ARGV[0], ARGV[1], ARGV[2].to_i
reload = reload == 'false' ? false : reload.to_i
client = Elasticsearch::Transport::Client.new(
  hosts: [url],
  reload_connections: reload,
  reload_on_failure: false,
  retry_on_failure: false,
  request_timeout: 2,
  transport_options: { request: { open_timeout: 2, timeout: 2 } }
)
results = []
n.times do
  begin
    client.perform_request('GET', '/')
    results << 'ok'
  rescue StandardError => e
    results << "#{e.class}: #{e.message}"
  end
end
puts JSON.generate(results)
