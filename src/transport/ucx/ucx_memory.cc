#include "transport/ucx/ucx_memory.h"

#include "transport/ucx/ucx_status.h"

#include <string_view>

namespace weightsync::transport::ucx {
namespace {

ucp_mem_map_params_t registration(void *ptr, size_t length, ucs_memory_type_t type) {
    ucp_mem_map_params_t params{};
    params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                        UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE;
    params.address = ptr;
    params.length = length;
    params.memory_type = type;
    return params;
}

}  // namespace

UcxMemory::UcxMemory(ucp_context_h context, void *ptr, size_t length, ucs_memory_type_t type)
    : UcxMemory(context, registration(ptr, length, type)) {}

std::unique_ptr<UcxMemory> UcxMemory::allocate(ucp_context_h context, size_t length) {
    ucp_mem_map_params_t params{};
    params.field_mask = UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS |
                        UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE;
    params.length = length;
    params.flags = UCP_MEM_MAP_ALLOCATE;
    params.memory_type = UCS_MEMORY_TYPE_HOST;
    return std::unique_ptr<UcxMemory>(new UcxMemory(context, params));
}

UcxMemory::UcxMemory(ucp_context_h context, const ucp_mem_map_params_t &params)
    : context_(context) {
    checkStatus(
        ucp_mem_map(context_, &params, &memh_), Errc::kTransport,
        (params.flags & UCP_MEM_MAP_ALLOCATE) != 0 ? "ucp_mem_map(ALLOCATE)" : "ucp_mem_map");
    ucp_mem_attr_t attr{};
    attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
    ucs_status_t status = ucp_mem_query(memh_, &attr);
    void *buffer = nullptr;
    size_t size = 0;
    if (status == UCS_OK) status = ucp_rkey_pack(context_, memh_, &buffer, &size);
    if (status != UCS_OK) {
        ucp_mem_unmap(context_, memh_);
        checkStatus(status, Errc::kTransport, "ucp_mem_query/ucp_rkey_pack");
    }
    address_ = attr.address;
    length_ = attr.length;
    packed_key_.assign(static_cast<const char *>(buffer), size);
    ucp_rkey_buffer_release(buffer);
}

UcxMemory::~UcxMemory() {
    ucp_mem_unmap(context_, memh_);
}

UcxRkey::UcxRkey(ucp_ep_h ep, const std::string &packed, const std::string &peer) {
    const ucs_status_t status = ucp_ep_rkey_unpack(ep, packed.data(), &rkey_);
    if (status != UCS_OK) {
        fail(Errc::kInvalidArgument, "ucx: cannot unpack the remote key of peer {}: {}", peer,
             ucs_status_string(status));
    }
}

UcxRkey::~UcxRkey() {
    ucp_rkey_destroy(rkey_);
}

}  // namespace weightsync::transport::ucx
