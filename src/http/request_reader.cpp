#include "attempts/http/request_reader.hpp"

#include <boost/beast/core/string.hpp>

namespace attempts::http {

namespace beast_http = boost::beast::http;

void Request::clear(std::size_t kept) {
  const auto reset = [kept](std::string& text) {
    if (text.capacity() > kept) {
      std::string().swap(text);
    } else {
      text.clear();
    }
  };
  method = Verb::unknown;
  reset(method_text);
  reset(target);
  version = 11;
  keep_alive = true;
  chunked = false;
  has_transfer_encoding = false;
  reset(content_type);
  reset(authorization);
  reset(expect);
  reset(idempotency_key);
  reset(accept);
  reset(accept_encoding);
  reset(last_event_id);
  last_event_id_count = 0;
  reset(origin);
  reset(access_control_request_method);
  content_type_count = authorization_count = idempotency_key_count = 0;
  origin_count = access_control_request_method_count = 0;
  reset(body);
}

RequestReader::RequestReader(Request& request) : request_(request) {
  request_.clear();
}

void RequestReader::on_request_impl(Verb method, string_view method_text, string_view target,
                                    int version, error_code&) {
  request_.method = method;
  request_.method_text.assign(method_text.data(), method_text.size());
  request_.target.assign(target.data(), target.size());
  request_.version = static_cast<unsigned>(version);
}

void RequestReader::on_field_impl(beast_http::field name, string_view name_text, string_view value,
                                  error_code&) {
  // Trailer fields (after a chunked body) are dropped: the header alone decides.
  if (is_header_done()) return;
  const auto keep = [&](std::string& into, unsigned& count) {
    if (count++ == 0) into.assign(value.data(), value.size());
  };
  switch (name) {
    case beast_http::field::content_type:
      return keep(request_.content_type, request_.content_type_count);
    case beast_http::field::authorization:
      return keep(request_.authorization, request_.authorization_count);
    case beast_http::field::expect:
      request_.expect.assign(value.data(), value.size());
      return;
    case beast_http::field::transfer_encoding:
      request_.has_transfer_encoding = true;
      return;
    case beast_http::field::accept:
      if (!request_.accept.empty()) request_.accept.append(", ");
      request_.accept.append(value.data(), value.size());
      return;
    case beast_http::field::accept_encoding:
      if (!request_.accept_encoding.empty()) request_.accept_encoding.append(", ");
      request_.accept_encoding.append(value.data(), value.size());
      return;
    case beast_http::field::origin:
      return keep(request_.origin, request_.origin_count);
    case beast_http::field::access_control_request_method:
      return keep(request_.access_control_request_method,
                  request_.access_control_request_method_count);
    case beast_http::field::unknown:
      if (boost::beast::iequals(name_text, "Idempotency-Key")) {
        keep(request_.idempotency_key, request_.idempotency_key_count);
      } else if (boost::beast::iequals(name_text, "Last-Event-ID")) {
        keep(request_.last_event_id, request_.last_event_id_count);
      }
      return;
    default:
      return;
  }
}

void RequestReader::on_header_impl(error_code&) {
  request_.keep_alive = keep_alive();
  request_.chunked = chunked();
}

void RequestReader::on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                                      error_code&) {
  // Within the body limit, which the parser has checked against Content-Length already.
  if (content_length) request_.body.reserve(static_cast<std::size_t>(*content_length));
}

std::size_t RequestReader::on_body_impl(string_view body, error_code&) {
  request_.body.append(body.data(), body.size());
  return body.size();
}

void RequestReader::on_chunk_header_impl(std::uint64_t, string_view, error_code&) {}

std::size_t RequestReader::on_chunk_body_impl(std::uint64_t, string_view body, error_code&) {
  request_.body.append(body.data(), body.size());
  return body.size();
}

void RequestReader::on_finish_impl(error_code&) {}

}  // namespace attempts::http
