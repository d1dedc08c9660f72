#pragma once

#include <boost/beast/http/basic_parser.hpp>
#include <cstdint>

#include "attempts/http/request.hpp"

namespace attempts::http {

// Beast's HTTP/1.1 parser, writing into a Request: only the fields the service reads are
// copied, into the Request's reused buffers, so a request costs no allocation per header field
// (Beast's own request_parser stores every field in a node of its own). One reader per request,
// as Beast's parsers are; the Request outlives them. Limits are Beast's: header_limit(),
// body_limit(), and the caller's read buffer for chunk-size lines and trailers.
class RequestReader final : public boost::beast::http::basic_parser<true> {
 public:
  // Clears `request` and reads into it.
  explicit RequestReader(Request& request);

 private:
  using error_code = boost::beast::error_code;
  using string_view = boost::beast::string_view;

  void on_request_impl(Verb method, string_view method_text, string_view target, int version,
                       error_code& ec) override;
  void on_response_impl(int, string_view, int, error_code&) override {}
  void on_field_impl(boost::beast::http::field name, string_view name_text, string_view value,
                     error_code& ec) override;
  void on_header_impl(error_code& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         error_code& ec) override;
  std::size_t on_body_impl(string_view body, error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t size, string_view extensions, error_code& ec) override;
  std::size_t on_chunk_body_impl(std::uint64_t remain, string_view body, error_code& ec) override;
  void on_finish_impl(error_code& ec) override;

  Request& request_;
};

}  // namespace attempts::http
